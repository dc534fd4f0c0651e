using IlgpuTrain.Layers;
using IlgpuTrain.Optimizers;
using IlgpuTrain.Training;

namespace IlgpuTrain.Properties.Training;

/// <summary>
/// Faults of a training run and the outputs it writes, at the library level (the CLI's side is in
/// TrainCommandProperties and CompareCommandProperties): best checkpoint and early stopping across
/// a resume; logs that are never wiped by a fit that fails and are continued, without duplicates, by
/// one that resumes; gradient accumulation that would make no update; losses that blow up without
/// going non-finite; unusable output folders; a disk that fills up during a write.
/// </summary>
public class RunFaultProperties
{
    private static InMemoryDataset Blobs(int n, int seed, string name = "blobs")
    {
        var r = new Random(seed);
        var x = new float[n * 4];
        var y = new int[n];
        for (int i = 0; i < n; i++)
        {
            y[i] = i % 3;
            for (int j = 0; j < 4; j++)
                x[(i * 4) + j] = (j == y[i] ? 2f : 0f) + (float)(r.NextDouble() - 0.5);
        }

        return new InMemoryDataset(name, x, y, new Shape(4), 3);
    }

    private static Trainer Small(IGradientTransformation optimizer, int epochs, int batch, params TrainingCallback[] callbacks) =>
        new(Devices.Cpu, new Dense(8) >> new ReLU() >> new Dense(3), new Shape(4), optimizer,
            new TrainerOptions { Epochs = epochs, BatchSize = batch, Seed = 3, WarmKernels = false, Callbacks = callbacks });

    private static EpochMetrics Epoch(int epoch, double valLoss, double trainLoss = 1.0, int steps = 10) =>
        new(epoch, trainLoss, 0.5, valLoss, 0.5, 0.9, 3, 0.01, null, 0, steps, 100, 0.1);

    private static string TempDir() => Directory.CreateTempSubdirectory("ilgpu-runfault-").FullName;

    // ---- best checkpoint and early stopping across a resume ----

    [Fact]
    public void A_resumed_epoch_worse_than_the_best_before_the_resume_does_not_replace_best_checkpoint()
    {
        string dir = TempDir();
        try
        {
            var trainer = Small(new Adam(0.01), 3, 16);
            using var s = trainer.Init();
            var resumed = s with { Epoch = 2, Step = 20, History = new History([Epoch(1, 0.9), Epoch(2, 0.5)]) };
            var cb = new CheckpointCallback(Path.Combine(dir, "ck"), saveBest: "val_loss");
            Assert.False(Directory.Exists(cb.Directory), "the constructor writes nothing");
            cb.OnFitStart(new FitStartInfo(resumed, 3));
            Assert.Equal(0.5, cb.Best);

            var worse = Epoch(3, 0.6);
            cb.OnEpochEnd(new EpochInfo(worse, resumed with { Epoch = 3, History = resumed.History.Add(worse) }, "m", 3));
            Assert.True(File.Exists(cb.LastPath));
            Assert.False(File.Exists(cb.BestPath), "val_loss 0.6 after a best of 0.5 before the resume replaced best.safetensors");

            var better = Epoch(3, 0.4);
            cb.OnEpochEnd(new EpochInfo(better, resumed with { Epoch = 3, History = resumed.History.Add(better) }, "m", 3));
            Assert.True(File.Exists(cb.BestPath), "an epoch better than every earlier one writes best.safetensors");
            Assert.Equal(0.4, cb.Best);

            // A fresh fit with the same callback starts from the worst value again.
            cb.OnFitStart(new FitStartInfo(s, 3));
            Assert.Equal(double.PositiveInfinity, cb.Best);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void A_fit_removes_the_temporary_checkpoints_a_killed_run_left()
    {
        string dir = TempDir();
        try
        {
            var cb = new CheckpointCallback(dir, saveBest: "val_loss");
            // AtomicFile's temporaries are NAME.tmp-PID-GUID; these writers' process is gone.
            using var gone = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("true") { UseShellExecute = false })!;
            gone.WaitForExit();
            string[] stray = [cb.LastPath + $".tmp-{gone.Id}-{Guid.NewGuid():N}", cb.BestPath + $".tmp-{gone.Id}-{Guid.NewGuid():N}"];
            foreach (var f in stray)
                File.WriteAllText(f, "half a checkpoint");
            string other = Path.Combine(dir, "notes.tmp-1");
            File.WriteAllText(other, "mine");
            using var s = Small(new Adam(0.01), 1, 16).Init();
            cb.OnFitStart(new FitStartInfo(s, 1));
            Assert.Equal([other], Directory.GetFiles(dir));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void A_non_finite_validation_loss_never_becomes_the_best_checkpoint()
    {
        string dir = TempDir();
        try
        {
            using var s = Small(new Adam(0.01), 2, 16).Init();
            var cb = new CheckpointCallback(dir, saveBest: "val_loss");
            cb.OnFitStart(new FitStartInfo(s with { Epoch = 1, Step = 5, History = new History([Epoch(1, double.NaN)]) }, 2));
            Assert.Equal(double.PositiveInfinity, cb.Best);
            var m = Epoch(2, double.NaN);
            cb.OnEpochEnd(new EpochInfo(m, s with { Epoch = 2, History = new History([m]) }, "m", 3));
            Assert.False(File.Exists(cb.BestPath));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Early_stopping_counts_its_patience_across_a_resume()
    {
        using var s = Small(new Adam(0.01), 5, 16).Init();
        var stopper = new EarlyStopping("val_loss", patience: 1, restoreBestWeights: true);
        var history = new History([Epoch(1, 1.0), Epoch(2, 0.8), Epoch(3, 0.9)]);
        stopper.OnFitStart(new FitStartInfo(s with { Epoch = 3, Step = 30, History = history }, 5));
        Assert.Equal(0.8, stopper.Best);
        Assert.Equal(2, stopper.BestEpoch);

        var m = Epoch(4, 0.95);
        var verdict = stopper.OnEpochEnd(new EpochInfo(m, s with { Epoch = 4, History = history.Add(m) }, "m", 3));
        Assert.True(verdict.Stop, "two epochs without improvement on 0.8 (one before the resume) exhaust a patience of 1");
        Assert.Null(verdict.RestoreParams);
        Assert.Contains("not in memory", verdict.Reason);
    }

    // ---- logs: never wiped before a fit has run an epoch; continued on resume ----

    [Fact]
    public void A_fit_that_fails_before_its_first_epoch_ends_leaves_the_previous_logs_untouched()
    {
        string dir = TempDir();
        try
        {
            string lr = Path.Combine(dir, "learning_rate.csv"), metrics = Path.Combine(dir, "metrics.csv");
            File.WriteAllText(lr, "step,epoch,learning_rate\n1,1,0.5\n");
            File.WriteAllText(metrics, "previous run\n");
            var ckpt = Path.Combine(dir, "checkpoints");

            // Refused before any step (accumulation larger than the run), and failing at the first step.
            var refused = Small(new MultiSteps(new Adam(0.01), 8), 1, 16, new LearningRateLogger(lr), new MetricsLogger(metrics), new CheckpointCallback(ckpt));
            Assert.Throws<ArgumentException>(() => refused.Fit(Blobs(32, 1)));
            var failing = Small(new Adam(0.01), 1, 16, new LearningRateLogger(lr), new MetricsLogger(metrics), new CheckpointCallback(ckpt), new ThrowOnStep());
            Assert.Throws<InvalidOperationException>(() => failing.Fit(Blobs(32, 1)));

            Assert.Equal("step,epoch,learning_rate\n1,1,0.5\n", File.ReadAllText(lr));
            Assert.Equal("previous run\n", File.ReadAllText(metrics));
            Assert.False(Directory.Exists(ckpt), "no checkpoint folder before an epoch ends");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void A_resumed_fit_continues_the_logs_with_each_update_once_in_order()
    {
        string dir = TempDir();
        try
        {
            var data = Blobs(48, 2);
            string lr = Path.Combine(dir, "learning_rate.csv"), metrics = Path.Combine(dir, "metrics.csv");
            var ckpt = new CheckpointCallback(Path.Combine(dir, "checkpoints"), saveBest: null);
            var optimizer = new Adam(new Constant(0.01));
            Small(optimizer, 1, 16, new LearningRateLogger(lr), new MetricsLogger(metrics), ckpt).Fit(data).State.Dispose();

            // A run that died after logging epoch 2 but before its checkpoint, cutting a line short.
            File.AppendAllText(lr, "4,2,0.01\n5,2,0.01\n6,2,0.0");
            var c = Checkpoint.Load(ckpt.LastPath, Devices.Cpu, optimizer);
            var from = CheckpointCallback.ToTrainState(c, null);
            var logger = new LearningRateLogger(lr);
            var result = Small(optimizer, 3, 16, logger, new MetricsLogger(metrics), ckpt).Fit(data, null, from);
            result.State.Dispose();

            string[] lines = File.ReadAllLines(lr);
            Assert.Equal(LearningRateLogger.Header, lines[0]);
            Assert.Equal(Enumerable.Range(1, 9).Select(i => (long)i), lines.Skip(1).Select(l => long.Parse(l.Split(',')[0], System.Globalization.CultureInfo.InvariantCulture)));
            Assert.DoesNotContain(lines, l => l.Contains("NaN", StringComparison.Ordinal));
            Assert.Equal([1, 2, 3], MetricsLog.Read(metrics).Epochs.Select(e => e.Epoch));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void The_step_loss_log_has_every_batch_once_in_order_across_a_resume()
    {
        string dir = TempDir();
        try
        {
            var data = Blobs(48, 2);
            string steps = Path.Combine(dir, "steps.csv");
            var ckpt = new CheckpointCallback(Path.Combine(dir, "checkpoints"), saveBest: null);
            var optimizer = new MultiSteps(new Adam(new Constant(0.01)), 2);
            var first = new StepLossLogger(steps);
            Small(optimizer, 1, 16, first, ckpt).Fit(data).State.Dispose();
            Assert.Equal([1L, 2, 3], first.Rows.Select(r => r.Step));

            // A run that died after logging epoch 2 but before its checkpoint, cutting a line short.
            File.AppendAllText(steps, "4,2,0,0.5,0.01,1\n5,2,1,0.4,0.01,0\n6,2,2,0.");
            var from = CheckpointCallback.ToTrainState(Checkpoint.Load(ckpt.LastPath, Devices.Cpu, optimizer), null);
            var logger = new StepLossLogger(steps);
            Small(optimizer, 3, 16, logger, ckpt).Fit(data, null, from).State.Dispose();

            string[] lines = File.ReadAllLines(steps);
            Assert.Equal(StepLossLogger.Header, lines[0]);
            var rows = lines.Skip(1).Select(l => l.Split(',')).ToList();
            var ci = System.Globalization.CultureInfo.InvariantCulture;
            Assert.Equal(Enumerable.Range(1, 9).Select(i => (long)i), rows.Select(r => long.Parse(r[0], ci)));
            Assert.Equal([1, 1, 1, 2, 2, 2, 3, 3, 3], rows.Select(r => int.Parse(r[1], ci)));
            Assert.Equal([0, 1, 2, 0, 1, 2, 0, 1, 2], rows.Select(r => int.Parse(r[2], ci)));
            Assert.All(rows, r => Assert.True(double.Parse(r[3], ci) is > 0 and < 10, string.Join(",", r)));
            // An update every second batch (accumulation over 2), across epoch boundaries.
            Assert.Equal([0, 1, 0, 1, 0, 1, 0, 1, 0], rows.Select(r => int.Parse(r[5], ci)));
            // The logged losses of the resumed epochs are the batches' own (the trainer's StepInfo).
            Assert.Equal(logger.Rows.Select(r => r.Loss.ToString("R", ci)), rows.Skip(3).Select(r => r[3]));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    // ---- gradient accumulation ----

    [Property(MaxTest = 12)]
    public Property Accumulation_logs_only_applied_updates_never_NaN_and_counts_the_dropped_tail() =>
        Prop.ForAll(Gen.Choose(1, 5).ToArbitrary(), Gen.Choose(0, 7).ToArbitrary(), (k, extra) =>
        {
            int batches = k + extra;
            var logger = new LearningRateLogger();
            var result = Small(new MultiSteps(new Adam(new Constant(0.01)), k), 1, 4, logger).Fit(Blobs(batches * 4, 5));
            using var final = result.State;
            int updates = batches / k;
            return (logger.Rows.Count == updates).Label($"rows {logger.Rows.Count} for {updates} updates (k {k}, {batches} batches)")
                .And(logger.Rows.All(r => r.LearningRate == 0.01).Label("every logged rate is the update's (no NaN)"))
                .And(logger.Rows.Select(r => r.Step).SequenceEqual(Enumerable.Range(1, updates).Select(i => (long)(i * k))).Label("an update every k-th batch"))
                .And((final.History.Epochs[0].Steps == updates).Label($"History steps {final.History.Epochs[0].Steps}"))
                .And((result.PendingMicroBatches == batches % k).Label($"pending {result.PendingMicroBatches}"))
                .And(double.IsFinite(final.History.Epochs[0].LearningRate).Label("metrics learning rate finite"));
        });

    [Fact]
    public void A_run_with_fewer_batches_than_one_accumulation_group_is_refused_before_any_step()
    {
        var steps = new ThrowOnStep();
        var trainer = Small(new MultiSteps(new Adam(0.01), 8), 1, 128, steps);
        var e = Assert.Throws<ArgumentException>(() => trainer.Fit(Blobs(256, 1)));
        Assert.Contains("accumulating 8", e.Message);
        Assert.Contains("only 2 batch", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    // ---- diagnosis: a blown-up finite loss, too few updates ----

    [Property(MaxTest = 50)]
    public Property A_final_loss_above_chance_is_a_warning_even_after_one_epoch() =>
        Prop.ForAll(Gen.Choose(2, 100).ToArbitrary(), Gen.Choose(-30, 90).ToArbitrary(), (c, tenths) =>
        {
            // Losses from 1e-3 to 1e9, dense around the threshold (1.1 ln C is 0.8 to 5.1).
            double loss = Math.Pow(10, tenths / 10.0);
            var findings = CurveDiagnosis.Diagnose(new History([Epoch(1, 1.0, trainLoss: loss)]), c);
            bool warned = findings.Any(CurveDiagnosis.IsWarning);
            bool far = loss > CurveDiagnosis.AboveUntrainedFactor * Math.Log(c);
            return (warned == far).Label($"loss {loss} with C {c}: warned {warned}, far {far}; {CurveDiagnosis.Format(findings)}");
        });

    [Fact]
    public void A_diverged_finite_loss_of_5e8_warns()
    {
        var findings = CurveDiagnosis.Diagnose(new History([Epoch(1, 4e8, trainLoss: 5e8)]), 10);
        Assert.Contains(findings, f => f.Kind == FindingKind.LearningRateTooHigh && CurveDiagnosis.IsWarning(f));
    }

    [Property(MaxTest = 50)]
    public Property Fewer_updates_than_the_schedule_assumes_is_a_warning() =>
        Prop.ForAll(Gen.Choose(0, 1000).ToArbitrary(), Gen.Choose(1, 1000).ToArbitrary(), (made, planned) =>
        {
            var h = new History([Epoch(1, 1.0, steps: made / 2), Epoch(2, 0.9, steps: made - (made / 2))]);
            var findings = CurveDiagnosis.Diagnose(h, 10, planned);
            bool warned = findings.Any(f => f.Kind == FindingKind.TooFewUpdates);
            bool few = made < planned * (1 - CurveDiagnosis.UpdateShortfall);
            return (warned == few && (!warned || findings.Any(CurveDiagnosis.IsWarning))).Label($"{made} of {planned}: warned {warned}, too few {few}")
                .And((!CurveDiagnosis.Diagnose(h, 10).Any(f => f.Kind == FindingKind.TooFewUpdates)).Label("no plan, no finding"));
        });

    // ---- output folders and writes ----

    [Fact]
    public void An_unusable_output_folder_is_one_line_naming_the_path()
    {
        string dir = TempDir();
        try
        {
            string file = Path.Combine(dir, "a-file");
            File.WriteAllText(file, "x");
            foreach (var bad in new[] { file, Path.Combine(file, "sub"), "/dev/null", "/proc/ilgpu-x", "/sys/ilgpu-x" })
            {
                var e = Assert.Throws<OutputWriteException>(() => OutputFolder.Require(bad, "--output"));
                Assert.StartsWith($"--output {bad}: ", e.Message);
                Assert.DoesNotContain('\n', e.Message);
                Assert.IsAssignableFrom<IOException>(e);
            }

            Assert.Equal("x", File.ReadAllText(file));
            string fresh = Path.Combine(dir, "new", "deeper");
            OutputFolder.Require(fresh, "--output");
            Assert.Empty(Directory.GetFileSystemEntries(fresh));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void A_full_disk_while_writing_a_checkpoint_keeps_the_previous_one_and_names_the_file()
    {
        string dir = TempDir();
        try
        {
            using var s = Small(new Adam(0.01), 2, 16).Init();
            var ok = new CheckpointCallback(dir, saveBest: null);
            var m1 = Epoch(1, 0.9);
            ok.OnEpochEnd(new EpochInfo(m1, s with { Epoch = 1, History = new History([m1]) }, "m", 3));
            byte[] before = File.ReadAllBytes(ok.LastPath);

            var full = new CheckpointCallback(dir, saveBest: null) { WrapStream = inner => new FullDiskStream(inner, 100) };
            var m2 = Epoch(2, 0.8);
            var e = Assert.Throws<OutputWriteException>(() => full.OnEpochEnd(new EpochInfo(m2, s with { Epoch = 2, History = new History([m1, m2]) }, "m", 3)));
            Assert.Contains(full.LastPath, e.Message);
            Assert.Contains("disk is full", e.Message);
            Assert.Contains("previous file is intact", e.Message);
            Assert.DoesNotContain('\n', e.Message);
            Assert.Equal(before, File.ReadAllBytes(ok.LastPath));
            Assert.Equal(1, Checkpoint.Load(ok.LastPath, Devices.Cpu).Epoch);
            Assert.Equal([ok.LastPath], Directory.GetFiles(dir));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void A_full_disk_while_writing_a_log_keeps_the_previous_rows_and_names_the_file()
    {
        string dir = TempDir();
        try
        {
            string lr = Path.Combine(dir, "learning_rate.csv"), metrics = Path.Combine(dir, "metrics.csv");
            File.WriteAllText(metrics, "previous run\n");
            var full = (Func<Stream, Stream>)(inner => new FullDiskStream(inner, 10));
            var trainer = Small(new Adam(0.01), 1, 16, new MetricsLogger(metrics) { WrapStream = full });
            var e = Assert.Throws<OutputWriteException>(() => trainer.Fit(Blobs(32, 1)));
            Assert.Contains(metrics, e.Message);
            Assert.Contains("disk is full", e.Message);
            Assert.Equal("previous run\n", File.ReadAllText(metrics));

            File.WriteAllText(lr, "step,epoch,learning_rate\n1,1,0.5\n");
            var lrTrainer = Small(new Adam(0.01), 1, 16, new LearningRateLogger(lr) { WrapStream = full });
            var e2 = Assert.Throws<OutputWriteException>(() => lrTrainer.Fit(Blobs(32, 1)));
            Assert.Contains(lr, e2.Message);
            Assert.Equal("step,epoch,learning_rate\n1,1,0.5\n", File.ReadAllText(lr));
            Assert.Equal(2, Directory.GetFiles(dir).Length);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private sealed class ThrowOnStep : TrainingCallback
    {
        public override void OnStep(StepInfo info) => throw new InvalidOperationException("a step ran");
    }
}

/// <summary>A stream that takes <c>capacity</c> bytes, then fails as a full disk does.</summary>
internal sealed class FullDiskStream(Stream inner, long capacity) : Stream
{
    private long _written;

    public override bool CanRead => false;

    public override bool CanSeek => inner.CanSeek;

    public override bool CanWrite => true;

    public override long Length => inner.Length;

    public override long Position
    {
        get => inner.Position;
        set => inner.Position = value;
    }

    public override void Flush() => inner.Flush();

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override long Seek(long offset, SeekOrigin origin) => inner.Seek(offset, origin);

    public override void SetLength(long value) => inner.SetLength(value);

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        if (_written + buffer.Length > capacity)
            throw new IOException("No space left on device");
        _written += buffer.Length;
        inner.Write(buffer);
    }
}
