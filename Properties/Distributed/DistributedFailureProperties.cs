using System.Diagnostics;

namespace IlgpuTrain.Properties.Distributed;

/// <summary>
/// A distributed run never hangs: a rank that hangs (SIGSTOP) makes rank 0's next collective
/// time out and abort the job with a message naming the rank and the collective; a rank that dies
/// (SIGKILL) ends the job at once; ranks launched with different models stop before the first
/// step, naming what differs.
/// </summary>
[Collection(ProcessState.Name)]
public class DistributedFailureProperties
{
    // A long run (it is stopped or killed well before its end).
    private static readonly string[] LongRun =
        ["train", "--distributed", "--device", "cpu", "--train-limit", "1024", "--val-size", "64", "--batch-size", "16", "--epochs", "200", "--schedule", "constant", "--workers", "0", "--collective-timeout", "5"];

    [MpiFact]
    public void A_hung_rank_makes_rank_0_abort_the_job_after_the_timeout_naming_the_collective()
    {
        string output = Path.Combine(Path.GetTempPath(), "ilgpu-hang-" + Guid.NewGuid().ToString("N"));
        var stopped = Stopwatch.StartNew();
        var r = Mpirun.Run(2, TimeSpan.FromMinutes(3), [.. LongRun, "--output", output], (mpirun, output) =>
        {
            int pid = Mpirun.RankPid(mpirun, 1, TimeSpan.FromMinutes(1));
            WaitForTraining(mpirun, output);
            Signal("STOP", pid);
            stopped.Restart();
        });
        double afterStop = stopped.Elapsed.TotalSeconds;
        Assert.True(r.Code is not 0 and not -1, r.ToString());
        Assert.Contains("rank 0 of 2: the ", r.Err, StringComparison.Ordinal);
        Assert.Contains("did not finish within 5 s", r.Err, StringComparison.Ordinal);
        Assert.Contains("another rank died, hangs", r.Err, StringComparison.Ordinal);
        Assert.True(afterStop is >= 5 and < 60, $"the job ended {afterStop:F1} s after the rank stopped; the timeout is 5 s\n{r}");
        Directory.Delete(output, recursive: true);
    }

    [MpiFact]
    public void A_killed_rank_ends_the_job_with_an_error_within_seconds()
    {
        string output = Path.Combine(Path.GetTempPath(), "ilgpu-kill-rank-" + Guid.NewGuid().ToString("N"));
        var killed = Stopwatch.StartNew();
        var r = Mpirun.Run(2, TimeSpan.FromMinutes(3), [.. LongRun, "--output", output], (mpirun, output) =>
        {
            int pid = Mpirun.RankPid(mpirun, 1, TimeSpan.FromMinutes(1));
            WaitForTraining(mpirun, output);
            Process.GetProcessById(pid).Kill();
            killed.Restart();
        });
        double afterKill = killed.Elapsed.TotalSeconds;
        Assert.True(r.Code is not 0 and not -1, r.ToString());
        Assert.True(afterKill < 60, $"the job ended {afterKill:F1} s after the kill\n{r}");
        Assert.True(r.Err.Contains("signal 9", StringComparison.Ordinal) || r.Err.Contains("did not finish within", StringComparison.Ordinal), $"no message about the dead rank\n{r}");
        Directory.Delete(output, recursive: true);
    }

    [MpiFact]
    public void Ranks_with_different_models_stop_before_training_naming_the_difference()
    {
        string output = Path.Combine(Path.GetTempPath(), "ilgpu-mismatch-" + Guid.NewGuid().ToString("N"));
        string[] common = ["train", "--distributed", "--device", "cpu", "--train-limit", "256", "--val-size", "64", "--epochs", "1", "--workers", "0", "--collective-timeout", "60", "--output", output];
        var r = Mpirun.RunEach(TimeSpan.FromMinutes(3), [.. common, "--model", "mlp"], [.. common, "--model", "cnn"]);
        Assert.True(r.Code is not 0 and not -1, r.ToString());
        Assert.Contains("the ranks were not launched with the same run", r.Err, StringComparison.Ordinal);
        Assert.Contains("model: rank 0 has \"", r.Err, StringComparison.Ordinal);
        Assert.DoesNotContain("epoch 1/1", r.Out, StringComparison.Ordinal);
        if (Directory.Exists(output))
            Directory.Delete(output, recursive: true);
    }

    // Rank 0 prints its progress once the first step has run on every rank (each step is collective).
    private static void WaitForTraining(Process mpirun, Func<string> output)
    {
        var clock = Stopwatch.StartNew();
        while (!output().Contains("epoch 1/200  batch", StringComparison.Ordinal))
        {
            Assert.False(mpirun.HasExited, $"the job ended before training\n{output()}");
            Assert.True(clock.Elapsed < TimeSpan.FromMinutes(1), $"no training progress after a minute\n{output()}");
            Thread.Sleep(20);
        }
    }

    private static void Signal(string signal, int pid)
    {
        using var kill = Process.Start(new ProcessStartInfo("kill", ["-" + signal, pid.ToString(System.Globalization.CultureInfo.InvariantCulture)]) { UseShellExecute = false })!;
        kill.WaitForExit();
        Assert.Equal(0, kill.ExitCode);
    }
}
