using System.CommandLine;
using IlgpuTrain.Training;

namespace IlgpuTrain.Cli;

/// <summary>
/// <c>ilgpu-train diagnose RUN</c>: the training doctor on a finished (or running) run's curves:
/// reads <c>metrics.csv</c> of a run folder (or the file itself) and prints each verdict with its
/// evidence and fixes, as <c>train</c> does at the end of a run.
/// </summary>
internal static class DiagnoseCommand
{
    private static readonly string[] TenClasses = ["fashion-mnist", "mnist", "cifar10"];

    public static Command Create()
    {
        var run = new Argument<string>("run") { Description = "A run folder written by train (runs/latest), or its metrics.csv." };
        var classes = new Option<int?>("--classes") { Description = "Number of classes, for the ln C and 1/C references (default: from the run's checkpoint when its data set is known; else judged without them)." };
        var command = new Command("diagnose", "Diagnose a run's training curves: overfitting, underfitting, a learning rate too high or too low, a stuck run.") { run, classes };
        command.SetAction(parse => Run(parse.GetValue(run)!, parse.GetValue(classes)));
        return command;
    }

    private static int Run(string run, int? classes)
    {
        string metrics = Directory.Exists(run) ? Path.Combine(run, "metrics.csv") : run;
        if (!File.Exists(metrics))
            return Cli.Fail([$"{run}: no metrics.csv there. Pass a run folder written by train (--output, default runs/latest) or its metrics.csv."]) ? 2 : 0;
        if (classes is < 2)
            return Cli.Fail([$"--classes {classes}: a classification has at least 2 classes; leave it out for other tasks."]) ? 2 : 0;
        return Cli.Guard(() =>
        {
            History history;
            try
            {
                history = MetricsLog.Read(metrics);
            }
            catch (FormatException e)
            {
                throw new InvalidDataException($"{e.Message}; diagnose reads the metrics.csv (or .jsonl) that train writes.", e);
            }

            classes ??= ClassesOf(Path.GetDirectoryName(Path.GetFullPath(metrics))!);
            Console.WriteLine($"{metrics}: {history.Epochs.Count} epoch(s){(classes is int c ? $", {c} classes" : string.Empty)}");
            var findings = CurveDiagnosis.Diagnose(history, classes);
            Console.WriteLine(CurveDiagnosis.Format(findings));
            TrainOptions.Warn(findings);
            return 0;
        });
    }

    // The data sets whose class count the run's stored configuration names; null when unknown.
    private static int? ClassesOf(string runFolder)
    {
        string checkpoint = Path.Combine(runFolder, "checkpoints", "last.safetensors");
        if (!File.Exists(checkpoint))
            return null;
        var config = Resuming.ReadConfig(checkpoint);
        return TenClasses.Contains(config.Dataset) ? 10 : null;
    }
}
