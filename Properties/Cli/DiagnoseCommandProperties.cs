namespace IlgpuTrain.Properties.Cli;

/// <summary><c>ilgpu-train diagnose</c>: reads a run's metrics.csv and prints the verdicts; bad input is refused in one line.</summary>
public class DiagnoseCommandProperties
{
    private static string Curve(string name) => Path.Combine(AppContext.BaseDirectory, "Training", "Curves", name + ".csv");

    [Fact]
    public void A_run_folder_or_its_metrics_file_gets_the_verdict_with_evidence_and_fixes()
    {
        string dir = Directory.CreateTempSubdirectory("ilgpu-diagnose-").FullName;
        try
        {
            File.Copy(Curve("overfit-1000-samples"), Path.Combine(dir, "metrics.csv"));
            var (code, output, err) = CliRun.Invoke("diagnose", dir, "--classes", "10");
            Assert.True(code == 0, err);
            Assert.Contains("30 epoch(s), 10 classes", output);
            Assert.Contains("Overfitting:", output);
            Assert.Contains("try: stop earlier", output);

            (code, output, err) = CliRun.Invoke("diagnose", Curve("sgd-lr2"), "--classes", "10");
            Assert.True(code == 0, err);
            Assert.Contains("LearningRateTooHigh:", output);
            Assert.Contains("warning:", err);

            // Without --classes (and no checkpoint to read them from) the accuracy rules still judge.
            (code, output, _) = CliRun.Invoke("diagnose", Curve("sgd-lr0.002-constant"));
            Assert.Equal(0, code);
            Assert.Contains("Underfitting:", output);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void A_missing_run_or_bad_classes_is_refused_with_the_fix()
    {
        var (code, _, err) = CliRun.Invoke("diagnose", "/nonexistent/run");
        Assert.Equal(2, code);
        Assert.Contains("no metrics.csv there", err);
        (code, _, err) = CliRun.Invoke("diagnose", Curve("default"), "--classes", "1");
        Assert.Equal(2, code);
        Assert.Contains("at least 2 classes", err);
        string bad = Path.Combine(Path.GetTempPath(), $"ilgpu-diagnose-{Guid.NewGuid():N}.csv");
        try
        {
            File.WriteAllText(bad, "not,a,metrics,file\n1,2\n");
            (code, _, err) = CliRun.Invoke("diagnose", bad);
            Assert.Equal(3, code);
            Assert.DoesNotContain("\n", err.TrimEnd());
        }
        finally
        {
            File.Delete(bad);
        }
    }
}
