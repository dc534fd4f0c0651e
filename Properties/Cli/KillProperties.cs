using System.Diagnostics;
using IlgpuTrain.Cli;

namespace IlgpuTrain.Properties.Cli;

/// <summary>
/// A real <c>ilgpu-train train</c> process killed with SIGKILL at moments spread over its run
/// (start-up, mid-epoch, during checkpoint writes) always leaves either no checkpoint yet or a
/// last.safetensors that <c>evaluate</c> reads back: checkpoints are replaced atomically.
/// </summary>
[Collection(ProcessState.Name)]
public class KillProperties
{
    private static (int Code, string Out, string Err) Run(params string[] args) => CliRun.Invoke(args);

    [Fact]
    public void Kill_9_at_any_moment_leaves_a_checkpoint_that_evaluate_reads()
    {
        string exe = Path.Combine(AppContext.BaseDirectory, "ilgpu-train");
        Assert.True(File.Exists(exe), $"the CLI's apphost is missing at {exe}");
        string root = Path.Combine(Path.GetTempPath(), "ilgpu-kill-" + Guid.NewGuid().ToString("N"));
        try
        {
            // One kill during start-up, then kills at spread offsets after the first checkpoint
            // exists (a small run rewrites last.safetensors every few tens of milliseconds, so
            // some land in the middle of a write). Offsets are fixed and timed from the first
            // checkpoint, so a slow, loaded machine changes where they land, not whether the
            // test can pass.
            foreach (int offsetMs in new[] { -1, 0, 23, 71, 160, 333, 700 })
            {
                string output = Path.Combine(root, $"kill-{offsetMs}");
                string last = Path.Combine(output, "checkpoints", "last.safetensors");
                var info = new ProcessStartInfo(exe) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
                foreach (var a in new[] { "train", "--device", "cpu", "--train-limit", "256", "--val-size", "64", "--batch-size", "32", "--epochs", "2000", "--schedule", "constant", "--output", output })
                    info.ArgumentList.Add(a);
                using var p = Process.Start(info)!;
                p.OutputDataReceived += (_, _) => { };
                p.ErrorDataReceived += (_, _) => { };
                p.BeginOutputReadLine();
                p.BeginErrorReadLine();
                try
                {
                    if (offsetMs < 0)
                    {
                        Thread.Sleep(300);
                    }
                    else
                    {
                        var wait = Stopwatch.StartNew();
                        while (!File.Exists(last))
                        {
                            Assert.False(p.HasExited, $"the run exited ({(p.HasExited ? p.ExitCode : 0)}) before its first checkpoint");
                            Assert.True(wait.Elapsed < TimeSpan.FromMinutes(2), "no checkpoint after 2 minutes");
                            Thread.Sleep(5);
                        }

                        Thread.Sleep(offsetMs);
                        Assert.False(p.HasExited, $"the run ended before the kill {offsetMs} ms after its first checkpoint (exit {(p.HasExited ? p.ExitCode : 0)})");
                    }
                }
                finally
                {
                    p.Kill(entireProcessTree: true);
                    p.WaitForExit();
                }

                if (offsetMs < 0 && !File.Exists(last))
                    continue;
                var (code, _, err) = Run("evaluate", "--checkpoint", last, "--device", "cpu");
                Assert.True(code == 0, $"killed {offsetMs} ms after the first checkpoint: evaluate exited {code}: {err}");
            }
        }
        finally
        {
            if (Directory.Exists(root))
                Directory.Delete(root, recursive: true);
        }
    }
}
