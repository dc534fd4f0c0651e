using System.Diagnostics;
using System.IO.Compression;
using System.Reflection;
using System.Text;
using System.Text.RegularExpressions;

namespace IlgpuTrain.Properties.Packaging;

/// <summary>
/// The packages as a user takes them: <c>dotnet pack</c> into a local folder; a fresh console project
/// (outside the repository, so none of its build settings apply) adds IlgpuTrain.Training from that
/// folder, trains the MLP for a few steps on synthetic data and prints its loss; and
/// <c>dotnet tool install</c> installs the CLI from that folder and runs <c>ilgpu-train devices</c>.
/// Restores are offline: the only sources are the packed folder and the NuGet global packages folder
/// (read as a feed), and the restores write to a private packages folder, so a package of an older
/// build is never taken from a cache.
/// </summary>
public sealed class PackageProperties : IDisposable
{
    /// <summary>The libraries, each a package that must bring no native binaries.</summary>
    private static readonly string[] Libraries =
        ["IlgpuTrain.Kernels", "IlgpuTrain.Functional", "IlgpuTrain.Layers", "IlgpuTrain.Optimizers", "IlgpuTrain.Training", "IlgpuTrain.Plots"];

    private readonly string dir = Directory.CreateTempSubdirectory("pack-").FullName;

    /// <inheritdoc/>
    public void Dispose() => Directory.Delete(dir, recursive: true);

    [PackSmokeFact]
    public void PackedLibrariesTrainInAFreshProjectAndTheToolListsDevices()
    {
        string feed = Path.Combine(dir, "feed");
        string root = PackSmoke.RepositoryRoot!;
        string configuration = typeof(PackageProperties).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()?.Configuration ?? "Release";
        // The test run has just built the solution in this configuration: pack what it built.
        Run(root, TimeSpan.FromMinutes(3), "pack", Path.Combine(root, "IlgpuTrain.sln"), "-c", configuration, "--no-build", "-o", feed);

        string version = VersionOf(feed, "IlgpuTrain.Training");
        foreach (string id in Libraries.Append("IlgpuTrain.Cli"))
        {
            string nupkg = Path.Combine(feed, $"{id}.{version}.nupkg");
            Assert.True(File.Exists(nupkg), $"{id}.{version}.nupkg was not packed");
            Assert.True(File.Exists(Path.ChangeExtension(nupkg, ".snupkg")), $"{id}.{version}.snupkg (symbols) was not packed");
            using ZipArchive zip = ZipFile.OpenRead(nupkg);
            var entries = zip.Entries.Select(e => e.FullName).ToList();
            Assert.Contains("README.md", entries);
            string nuspec = new StreamReader(zip.GetEntry($"{id}.nuspec")!.Open()).ReadToEnd();
            Assert.Contains("<readme>README.md</readme>", nuspec);
            Assert.Contains("<license type=\"expression\">MIT</license>", nuspec);
            Assert.Contains("LICENSE", entries);
            Assert.Matches("<repository type=\"git\"[^>]* commit=\"[0-9a-f]{40}\"", nuspec);
            if (id == "IlgpuTrain.Cli")
            {
                Assert.Contains("<packageType name=\"DotnetTool\"", nuspec);
                continue;
            }

            Assert.Contains($"lib/net10.0/{id}.dll", entries);
            Assert.Contains($"lib/net10.0/{id}.xml", entries);
            Assert.DoesNotContain(entries, e => e.StartsWith("runtimes/", StringComparison.Ordinal));
        }

        // Only the plots package depends on SkiaSharp (native binaries); the training libraries do not.
        foreach (string id in Libraries.Where(l => l != "IlgpuTrain.Plots"))
            Assert.DoesNotContain("SkiaSharp", NuspecOf(feed, id, version));

        string packages = Path.Combine(dir, "packages");
        // Found by every restore under the temporary folder; <clear /> drops the user's other sources.
        string config = Path.Combine(dir, "nuget.config");
        File.WriteAllText(config, $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <packageSources>
                <clear />
                <add key="packed" value="{feed}" />
                <add key="cache" value="{PackSmoke.GlobalPackages}" />
              </packageSources>
            </configuration>
            """);

        string app = Path.Combine(dir, "app");
        Directory.CreateDirectory(app);
        // Empty build files stop MSBuild from reading any above the temporary folder.
        File.WriteAllText(Path.Combine(dir, "Directory.Build.props"), "<Project />");
        File.WriteAllText(Path.Combine(dir, "Directory.Build.targets"), "<Project />");
        File.WriteAllText(Path.Combine(dir, "Directory.Packages.props"), "<Project />");
        File.WriteAllText(Path.Combine(app, "app.csproj"), $"""
            <Project Sdk="Microsoft.NET.Sdk">
              <PropertyGroup>
                <OutputType>Exe</OutputType>
                <TargetFramework>net10.0</TargetFramework>
                <ImplicitUsings>enable</ImplicitUsings>
                <Nullable>enable</Nullable>
                <RestorePackagesPath>{packages}</RestorePackagesPath>
              </PropertyGroup>
              <ItemGroup>
                <PackageReference Include="IlgpuTrain.Training" Version="{version}" />
              </ItemGroup>
            </Project>
            """);
        File.WriteAllText(Path.Combine(app, "Program.cs"), """
            using System.Globalization;
            using IlgpuTrain.Functional;
            using IlgpuTrain.Optimizers;
            using IlgpuTrain.Training;

            // Three separable classes of 8 features: feature c is raised for class c.
            const int n = 192, features = 8, classes = 3;
            var random = new Random(7);
            var x = new float[n * features];
            var labels = new int[n];
            for (int i = 0; i < n; i++)
            {
                labels[i] = i % classes;
                for (int j = 0; j < features; j++)
                    x[(i * features) + j] = (float)random.NextDouble() + (j == labels[i] ? 2f : 0f);
            }

            var data = new InMemoryDataset("synthetic", x, labels, new Shape(features), classes);
            using var device = ComputeDevice.Create(DeviceKind.Cpu);
            var trainer = new Trainer(device, Models.Mlp(classes), data.SampleShape, new Adam(1e-2), new TrainerOptions { Epochs = 3, BatchSize = 32 });
            using TrainState state = trainer.Fit(data).State;
            foreach (EpochMetrics e in state.History.Epochs)
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"epoch {e.Epoch} loss {e.TrainLoss:R}"));
            """);
        string trained = Run(app, TimeSpan.FromMinutes(4), "run", "-c", "Release");
        double[] losses = [.. Regex.Matches(trained, @"loss (\S+)").Select(m => double.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture))];
        Assert.True(losses.Length == 3, $"expected 3 epochs of loss, got:\n{trained}");
        Assert.True(losses.All(double.IsFinite) && losses[^1] < losses[0], $"the loss did not fall:\n{trained}");
        // The program that takes the training libraries gets no native binaries.
        string bin = Path.Combine(app, "bin");
        Assert.False(Directory.Exists(Path.Combine(bin, "Release", "net10.0", "runtimes")), "the app's build output has a runtimes folder (native binaries)");
        Assert.Empty(Directory.EnumerateFiles(bin, "*Skia*", SearchOption.AllDirectories));

        string tools = Path.Combine(dir, "tools");
        Run(dir, TimeSpan.FromMinutes(3), "tool", "install", "IlgpuTrain.Cli", "--version", version, "--tool-path", tools, "--configfile", config);
        string devices = Run(dir, TimeSpan.FromMinutes(1), Path.Combine(tools, "ilgpu-train"), "devices", "--json");
        Assert.Contains("\"kind\": \"cpu\"", devices);
    }

    private static string VersionOf(string feed, string id)
    {
        string? file = Directory.EnumerateFiles(feed, $"{id}.*.nupkg").SingleOrDefault(f => !f.EndsWith(".snupkg", StringComparison.Ordinal));
        Assert.True(file is not null, $"{id} was not packed into {feed}");
        return Path.GetFileNameWithoutExtension(file)[(id.Length + 1)..];
    }

    private static string NuspecOf(string feed, string id, string version)
    {
        using ZipArchive zip = ZipFile.OpenRead(Path.Combine(feed, $"{id}.{version}.nupkg"));
        return new StreamReader(zip.GetEntry($"{id}.nuspec")!.Open()).ReadToEnd();
    }

    /// <summary>Runs dotnet (or an installed tool, given by path) and returns its output; fails with the output on a non-zero exit.</summary>
    private string Run(string workingDirectory, TimeSpan timeout, string first, params string[] rest)
    {
        bool tool = Path.IsPathRooted(first);
        var info = new ProcessStartInfo(tool ? first : "dotnet", tool ? rest : [first, .. rest])
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.Environment["NUGET_PACKAGES"] = Path.Combine(dir, "packages");
        info.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        info.Environment["DOTNET_NOLOGO"] = "1";
        info.Environment["DOTNET_SKIP_FIRST_TIME_EXPERIENCE"] = "1";
        // The test host's MSBuild settings must not leak into the child builds.
        foreach (string key in new[] { "MSBuildExtensionsPath", "MSBuildSDKsPath", "MSBUILD_EXE_PATH", "DOTNET_HOST_PATH" })
            info.Environment.Remove(key);
        using Process p = Process.Start(info)!;
        Task<string> stdout = p.StandardOutput.ReadToEndAsync();
        Task<string> stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeout))
        {
            p.Kill(entireProcessTree: true);
            Assert.Fail($"{info.FileName} {string.Join(' ', info.ArgumentList)} ran past {timeout}");
        }

        string output = new StringBuilder(stdout.Result).Append(stderr.Result).ToString();
        Assert.True(p.ExitCode == 0, $"{info.FileName} {string.Join(' ', info.ArgumentList)} exited with {p.ExitCode}:\n{output}");
        return output;
    }
}

/// <summary>Where the package check can run: the repository and the packages to restore offline.</summary>
internal static class PackSmoke
{
    /// <summary>The folder holding IlgpuTrain.sln above the test assembly, or null.</summary>
    public static readonly string? RepositoryRoot = FindRoot();

    /// <summary>NuGet's global packages folder, read as a feed by the fresh project.</summary>
    public static readonly string GlobalPackages =
        Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } p ? p : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");

    /// <summary>Why the check cannot run here, or null.</summary>
    public static string? SkipReason =>
        RepositoryRoot is null ? "IlgpuTrain.sln is not above the test assembly, so there is nothing to pack."
        : !Directory.Exists(Path.Combine(GlobalPackages, "ilgpu", "1.5.3")) ? $"ILGPU 1.5.3 is not in the NuGet global packages folder ({GlobalPackages}), so the fresh project cannot restore offline; run dotnet restore online once."
        : null;

    private static string? FindRoot()
    {
        for (DirectoryInfo? d = new(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            if (File.Exists(Path.Combine(d.FullName, "IlgpuTrain.sln")))
                return d.FullName;
        }

        return null;
    }
}

/// <summary>A fact that packs the repository: skipped, with the reason, where it cannot restore offline.</summary>
public sealed class PackSmokeFactAttribute : FactAttribute
{
    /// <summary>Sets the skip reason when the check cannot run here.</summary>
    public PackSmokeFactAttribute()
    {
        if (PackSmoke.SkipReason is { } why)
            Skip = why;
    }
}
