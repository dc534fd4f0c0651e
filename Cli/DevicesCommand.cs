using System.CommandLine;
using System.Text.Json;
using IlgpuTrain.Functional;

namespace IlgpuTrain.Cli;

/// <summary><c>ilgpu-train devices</c>: every accelerator ILGPU found, every one skipped and why, and the one a run would use.</summary>
internal static class DevicesCommand
{
    private static readonly JsonSerializerOptions JsonOptions = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase };

    /// <summary>The report as <c>devices --json</c> (and gpu-report) write it: found, skipped with the reason, selected.</summary>
    internal static object Json(DeviceReport report) => new
    {
        found = report.Found.Select(d => new { kind = d.Kind.ToString().ToLowerInvariant(), d.Ordinal, d.Name, d.Details }),
        skipped = report.Skipped.Select(s => new { kind = s.Kind.ToString().ToLowerInvariant(), s.Name, s.Reason }),
        selected = report.Selected,
    };

    public static Command Create()
    {
        var json = new Option<bool>("--json") { Description = "Print the report as JSON." };
        var command = new Command("devices", "List the accelerators ILGPU found and the ones it skipped, with the reason.") { json };
        command.SetAction(parse =>
        {
            var report = ComputeDevice.Describe();
            if (parse.GetValue(json))
            {
                Console.WriteLine(JsonSerializer.Serialize(Json(report), JsonOptions));
            }
            else
            {
                Console.WriteLine(report);
            }
            return 0;
        });
        return command;
    }
}
