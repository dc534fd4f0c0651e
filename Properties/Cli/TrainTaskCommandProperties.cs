using System.Globalization;
using IlgpuTrain.Training;

namespace IlgpuTrain.Properties.Cli;

/// <summary>
/// <c>ilgpu-train train --task regression|multilabel --dataset csv</c>: a tabular run trains,
/// logs and checkpoints by the task's metrics, evaluates, refuses to resume as another task, and
/// refuses bad task options before any work.
/// </summary>
[Collection(ProcessState.Name)]
public class TrainTaskCommandProperties
{
    private static (int Code, string Out, string Err) Run(params string[] args) => CliRun.Invoke(args);

    // y = 3 x1 - 2 x2 + small noise; labels a = x1 > 0, b = x2 > 0.
    private static string WriteCsv(string dir)
    {
        var r = new Random(11);
        var lines = new List<string> { "x1,x2,y,a,b" };
        for (int i = 0; i < 240; i++)
        {
            double x1 = (r.NextDouble() * 4) - 2, x2 = (r.NextDouble() * 4) - 2;
            double y = (3 * x1) - (2 * x2) + (0.05 * ((r.NextDouble() * 2) - 1));
            lines.Add(string.Create(CultureInfo.InvariantCulture, $"{x1:F4},{x2:F4},{y:F4},{(x1 > 0 ? 1 : 0)},{(x2 > 0 ? 1 : 0)}"));
        }

        string path = Path.Combine(dir, "table.csv");
        File.WriteAllLines(path, lines);
        return path;
    }

    [Fact]
    public void A_regression_run_logs_its_metrics_evaluates_and_refuses_a_resume_as_another_task()
    {
        string dir = Directory.CreateTempSubdirectory("ilgpu-task-cli-").FullName;
        try
        {
            string csv = WriteCsv(dir), output = Path.Combine(dir, "run");
            var (code, stdout, err) = Run("train", "--task", "regression", "--dataset", "csv", "--data", csv, "--target", "y", "--features", "x1,x2",
                "--dropout", "0", "--lr", "0.01", "--batch-size", "32", "--epochs", "12", "--device", "cpu", "--output", output);
            Assert.True(code == 0, err);
            Assert.Contains("regression (mse)", stdout);
            Assert.Contains("val_rmse", File.ReadLines(Path.Combine(output, "metrics.csv")).First());
            var last = MetricsLog.Read(Path.Combine(output, "metrics.csv")).Last!;
            Assert.True(last.Value("val_rmse") < 0.5, $"validation RMSE {last.Value("val_rmse")}");

            string best = Path.Combine(output, "checkpoints", "best.safetensors");
            var (evalCode, evalOut, evalErr) = Run("evaluate", "--checkpoint", best, "--device", "cpu");
            Assert.True(evalCode == 0, evalErr);
            Assert.Contains("rmse", evalOut);
            Assert.DoesNotContain("accuracy", evalOut);

            var (resumeCode, _, resumeErr) = Run("train", "--task", "multilabel", "--dataset", "csv", "--data", csv, "--target", "a,b", "--features", "x1,x2",
                "--dropout", "0", "--lr", "0.01", "--batch-size", "32", "--epochs", "12", "--device", "cpu", "--output", output,
                "--resume", Path.Combine(output, "checkpoints", "last.safetensors"));
            Assert.True(resumeCode == 2, $"exit {resumeCode}: {resumeErr}");
            Assert.Contains("--task regression", resumeErr);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void A_multi_label_run_reports_f1_scores()
    {
        string dir = Directory.CreateTempSubdirectory("ilgpu-task-cli-").FullName;
        try
        {
            string csv = WriteCsv(dir), output = Path.Combine(dir, "run");
            var (code, stdout, err) = Run("train", "--task", "multilabel", "--dataset", "csv", "--data", csv, "--target", "a,b", "--features", "x1,x2",
                "--dropout", "0", "--lr", "0.01", "--batch-size", "32", "--epochs", "8", "--device", "cpu", "--output", output);
            Assert.True(code == 0, err);
            Assert.Contains("micro_f1", stdout);
            var last = MetricsLog.Read(Path.Combine(output, "metrics.csv")).Last!;
            Assert.True(last.Value("val_micro_f1") > 0.85, $"validation micro-F1 {last.Value("val_micro_f1")}");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Theory]
    [InlineData("--task,regression", "--task regression: trains on tabular data")]
    [InlineData("--task,ranking", "--task ranking: unknown")]
    [InlineData("--dataset,csv", "--dataset csv: give the file with --data FILE.csv")]
    [InlineData("--task,regression,--dataset,csv,--data,x.csv", "name the target column(s) with --target COLUMN")]
    [InlineData("--loss,huber", "--loss huber: use one of mse, huber, l1, smooth-l1 with --task regression")]
    [InlineData("--delta,0", "--delta 0: must be positive")]
    public void Bad_task_options_are_refused_before_any_work(string options, string expected)
    {
        var (code, _, err) = Run(["train", .. options.Split(','), "--output", Path.Combine(Path.GetTempPath(), $"ilgpu-never-{Guid.NewGuid():N}")]);
        Assert.Equal(2, code);
        Assert.Contains(expected, err);
    }
}
