using IlgpuTrain.Layers;
using IlgpuTrain.Optimizers;
using IlgpuTrain.Training;

namespace IlgpuTrain.Properties.Training;

/// <summary>
/// Tasks as values: each built-in task's loss and metrics against float64 references, metrics exact
/// over a set whatever the batching, runs that learn (regression from a CSV file, multi-label), a
/// task of one's own through the public interface, monitors that follow a task's direction, and
/// resumes refused across tasks.
/// </summary>
public class TrainingTaskProperties
{
    private static readonly Gen<(int N, int T, float[] P, float[] Y)> Pairs =
        from n in Gen.Choose(1, 9)
        from t in Gen.Choose(1, 4)
        from p in Gen.Choose(-300, 300).Select(v => v / 100f).ArrayOf(n * t)
        from y in Gen.Choose(-300, 300).Select(v => v / 100f).ArrayOf(n * t)
        select (n, t, p, y);

    // Loss (Mean and Sum) and statistics of a task on one batch, read back to the host.
    private static (double Mean, double Sum, double[] Metrics) Apply(ITrainingTask task, int n, int t, float[] p, float[] y)
    {
        using var step = Devices.Cpu.BeginStep();
        var pt = step.Upload(p, new Shape(n, t));
        var yt = step.Upload(y, new Shape(n, t));
        double mean = task.Loss(step, pt, yt, LossReduction.Mean).ToHost()[0];
        double sum = task.Loss(step, pt, yt, LossReduction.Sum).ToHost()[0];
        var totals = task.Statistics(step, pt, yt).SelectMany(s => s.ToHost()).Select(v => (double)v).ToList();
        return (mean, sum, [.. task.Finish(totals, n)]);
    }

    [Property(MaxTest = 60)]
    public Property Regression_losses_mae_and_rmse_equal_float64_references() =>
        Prop.ForAll(Pairs.ToArbitrary(), Gen.Elements(RegressionLoss.Mse, RegressionLoss.Huber, RegressionLoss.L1, RegressionLoss.SmoothL1).ToArbitrary(), (c, kind) =>
        {
            const double delta = 0.7;
            var task = new RegressionTask { LossFunction = kind, Delta = (float)delta };
            var (mean, sum, m) = Apply(task, c.N, c.T, c.P, c.Y);
            double[] d = [.. c.P.Zip(c.Y, (a, b) => (double)a - b)];
            double Element(double e) => kind switch
            {
                RegressionLoss.Mse => e * e,
                RegressionLoss.L1 => Math.Abs(e),
                RegressionLoss.Huber => Math.Abs(e) < delta ? 0.5 * e * e : delta * (Math.Abs(e) - (0.5 * delta)),
                _ => Math.Abs(e) < delta ? 0.5 * e * e / delta : Math.Abs(e) - (0.5 * delta),
            };
            double loss = d.Average(Element);
            return Close.Scalar(mean, loss, 1e-5, 1e-5, "mean loss")
                .And(Close.Scalar(sum / c.N, loss, 1e-5, 1e-5, "sum of per-sample losses / N"))
                .And(Close.Scalar(m[0], d.Average(Math.Abs), 1e-5, 1e-5, "mae"))
                .And(Close.Scalar(m[1], Math.Sqrt(d.Average(e => e * e)), 1e-5, 1e-5, "rmse"))
                .Label($"{kind}, (N, T) = ({c.N}, {c.T})");
        });

    [Fact]
    public void Micro_and_macro_f1_match_scikit_learn_including_a_label_with_zero_division()
    {
        // f1_score(y_true, y_pred, average=...) with y_true = [[1,0,1],[0,1,0],[1,1,0]],
        // y_pred = [[1,0,0],[0,1,1],[1,0,0]]: per label (TP, FP, FN) = (2,0,0), (1,0,1), (0,1,1):
        // F1 = 1, 2/3, 0; macro 5/9; micro 2*3/(2*3+1+2) = 2/3.
        var (micro, macro) = MultiLabelTask.F1([2, 0, 0, 1, 0, 1, 0, 1, 1]);
        Assert.Equal(2.0 / 3, micro, 12);
        Assert.Equal(5.0 / 9, macro, 12);

        // A label never true and never predicted: its F1 is 0/0, which zero_division="warn" (the
        // default) scores 0: y_true = y_pred = [[1,0],[1,0]] gives macro 0.5, micro 1.
        (micro, macro) = MultiLabelTask.F1([2, 0, 0, 0, 0, 0]);
        Assert.Equal(1.0, micro, 12);
        Assert.Equal(0.5, macro, 12);

        // Nothing true, nothing predicted: 0 for both.
        Assert.Equal((0.0, 0.0), MultiLabelTask.F1([0, 0, 0]));
        Assert.Throws<ArgumentException>(() => MultiLabelTask.F1([1, 2]));
    }

    [Property(MaxTest = 60)]
    public Property Multi_label_loss_counts_and_metrics_equal_a_float64_reference() =>
        Prop.ForAll(Pairs.ToArbitrary(), Gen.Elements(0.3f, 0.5f, 0.8f).ArrayOf(4).ToArbitrary(), (c, thresholds) =>
        {
            // Logits on a grid of integers/2 keep sigmoid away from the thresholds' rounding edge.
            float[] logits = [.. c.P.Select(v => MathF.Round(v * 2) / 2)];
            float[] y = [.. c.Y.Select(v => v > 0 ? 1f : 0f)];
            float[] w = [.. Enumerable.Range(0, c.T).Select(j => 0.5f + j)];
            var task = new MultiLabelTask { Thresholds = thresholds[..c.T], PosWeight = w };
            var (mean, sum, m) = Apply(task, c.N, c.T, logits, y);
            var counts = new double[3 * c.T];
            double loss = 0, exact = 0;
            for (int i = 0; i < c.N; i++)
            {
                bool all = true;
                for (int j = 0; j < c.T; j++)
                {
                    double x = logits[(i * c.T) + j], t = y[(i * c.T) + j], s = 1 / (1 + Math.Exp(-x));
                    loss -= (w[j] * t * Math.Log(s)) + ((1 - t) * Math.Log(1 - s));
                    bool predicted = s > thresholds[j], truth = t >= 0.5;
                    counts[(3 * j) + (predicted && truth ? 0 : predicted ? 1 : 2)] += predicted || truth ? 1 : 0;
                    all &= predicted == truth;
                }

                exact += all ? 1 : 0;
            }

            loss /= c.N * c.T;
            var (micro, macro) = MultiLabelTask.F1(counts);
            return Close.Scalar(mean, loss, 1e-5, 1e-5, "mean loss")
                .And(Close.Scalar(sum / c.N, loss, 1e-5, 1e-5, "per-sample loss sum / N"))
                .And(Close.Scalar(m[0], micro, 1e-12, 0, "micro-F1"))
                .And(Close.Scalar(m[1], macro, 1e-12, 0, "macro-F1"))
                .And(Close.Scalar(m[2], exact / c.N, 1e-12, 0, "subset accuracy"))
                .Label($"(N, L) = ({c.N}, {c.T})");
        });

    private static TabularDataset Linear(int n, int seed, string name = "linear")
    {
        var r = new Random(seed);
        var x = new float[n * 2];
        var y = new float[n];
        for (int i = 0; i < n; i++)
        {
            x[2 * i] = (float)((r.NextDouble() * 4) - 2);
            x[(2 * i) + 1] = (float)((r.NextDouble() * 4) - 2);
            y[i] = (3 * x[2 * i]) - (2 * x[(2 * i) + 1]) + (float)(0.05 * ((r.NextDouble() * 2) - 1));
        }

        return new TabularDataset(name, x, ["x1", "x2"], y, ["y"]);
    }

    private static Layer Mlp(int outputs) => new Dense(32) >> new ReLU() >> new Dense(outputs);

    [Fact]
    public void Evaluation_metrics_are_exact_over_the_set_whatever_the_batch_size()
    {
        var data = Linear(53, 3);
        var model = Mlp(1);
        var (p, s) = model.Init(Devices.Cpu, data.SampleShape, Rng.Create(1));
        using (p)
        using (s)
        {
            EvalResult Eval(int batch) => new Trainer(Devices.Cpu, model, data.SampleShape, new Sgd(0.1), new TrainerOptions { Task = new RegressionTask(), EvalBatchSize = batch, WarmKernels = false }).Evaluate(p, s, data);
            var whole = Eval(1000);
            var small = Eval(7);   // 7 batches of 7 and one of 4: a mean of batch means would weigh the last batch wrongly

            // float64 reference from the model's predictions on the whole set.
            using var step = Devices.Cpu.BeginStep();
            var pred = model.Predict(p, s, step.Upload(data.Features, new Shape(data.Count, 2))).ToHost();
            double[] d = [.. pred.Select((v, i) => (double)v - data.Targets[i])];
            Assert.Equal(53, small.Samples);
            Assert.Equal(d.Average(Math.Abs), small.Metrics["mae"], 5);
            Assert.Equal(Math.Sqrt(d.Average(e => e * e)), small.Metrics["rmse"], 5);
            Assert.Equal(d.Average(e => e * e), small.Loss, 4);
            Assert.Equal(whole.Metrics["rmse"], small.Metrics["rmse"], 5);
            Assert.True(double.IsNaN(small.Accuracy) && small.K == 0, "a regression has no accuracy");
        }
    }

    [Fact]
    public void A_regression_run_from_a_csv_file_learns_a_linear_target_to_a_low_rmse()
    {
        string path = Path.Combine(Path.GetTempPath(), $"ilgpu-linear-{Guid.NewGuid():N}.csv");
        try
        {
            var source = Linear(400, 5);
            File.WriteAllLines(path, ["x1,x2,y", .. Enumerable.Range(0, source.Count).Select(i => string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{source.Features[2 * i]:R},{source.Features[(2 * i) + 1]:R},{source.Targets[i]:R}"))]);
            var (train, val) = CsvDataset.Load(path, ["y"]).Split(0.2, 0);
            var scaler = Standardization.Fit(train);
            (train, val) = (train.Standardize(scaler), val.Standardize(scaler));
            var options = new TrainerOptions { Task = new RegressionTask(), Epochs = 25, BatchSize = 32, Seed = 2, WarmKernels = false };
            var trainer = new Trainer(Devices.Cpu, Mlp(1), train.SampleShape, new Adam(1e-2), options);
            var result = trainer.Fit(train, val);
            using var final = result.State;
            var last = final.History.Last!;
            // y spans about [-10, 10] (std 3.3); the noise is uniform in ±0.05.
            Assert.True(last.Value("val_rmse") < 0.3, $"validation RMSE {last.Value("val_rmse")}");
            Assert.True(last.Value("val_mae") < last.Value("val_rmse") + 1e-12, "MAE is at most RMSE");
            Assert.True(double.IsNaN(last.TrainAccuracy) && last.ValAccuracy is null, "no accuracy for a regression");
            Assert.Equal(trainer.Evaluate(final.Params, final.State, val).Metrics["rmse"], last.Value("val_rmse")!.Value, 6);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void A_multi_label_run_learns_signs_of_features_to_a_high_micro_f1()
    {
        var r = new Random(4);
        int n = 600;
        var x = new float[n * 3];
        var y = new float[n * 3];
        for (int i = 0; i < x.Length; i++)
        {
            x[i] = (float)((r.NextDouble() * 2) - 1);
            y[i] = x[i] > 0 ? 1 : 0;
        }

        var data = new TabularDataset("signs", x, ["a", "b", "c"], y, ["a>0", "b>0", "c>0"]);
        var options = new TrainerOptions { Task = new MultiLabelTask(), Epochs = 15, BatchSize = 32, Seed = 1, WarmKernels = false };
        var trainer = new Trainer(Devices.Cpu, Mlp(3), data.SampleShape, new Adam(1e-2), options);
        var result = trainer.Fit(data, data);
        using var final = result.State;
        var last = final.History.Last!;
        Assert.True(last.Value("val_micro_f1") > 0.9, $"micro-F1 {last.Value("val_micro_f1")}");
        Assert.True(last.Value("val_macro_f1") > 0.9, $"macro-F1 {last.Value("val_macro_f1")}");
        Assert.True(last.ValLoss < final.History.Epochs[0].ValLoss, "validation loss fell");
    }

    /// <summary>A task written against the public interface only: squared error, with a mean squared error metric from a sum and a count.</summary>
    private sealed class SquaredErrorTask : ITrainingTask
    {
        public string Name => "squared error (own)";

        public bool UsesTargets => true;

        public IReadOnlyList<TaskMetric> Metrics { get; } = [new("my_mse", false)];

        public string Monitor => "val_my_mse";

        public string? OutputProblem(Shape output) => output.Rank == 1 ? null : "it must output (values)";

        public string? DataProblem(IDataset data, Shape output) => data is ITargetDataset t && t.TargetShape == output ? null : "the targets must match the output";

        public Tensor Loss(StepScope step, Tensor prediction, Tensor target, LossReduction reduction) => F.MseLoss(prediction, target, reduction);

        public IReadOnlyList<Tensor> Statistics(StepScope step, Tensor prediction, Tensor target) =>
            [F.MseLoss(prediction, target, LossReduction.Sum), step.Upload([(float)prediction.Length], new Shape(1))];

        public IReadOnlyList<double> Finish(IReadOnlyList<double> totals, long samples) => [totals[0] / totals[1]];
    }

    [Fact]
    public void A_task_of_ones_own_trains_reports_its_metric_and_drives_early_stopping_in_its_direction()
    {
        var data = Linear(200, 8);
        var task = new SquaredErrorTask();
        var stop = new EarlyStopping(task.Monitor, patience: 2);
        Assert.Equal(MonitorMode.Auto, stop.Mode);
        var options = new TrainerOptions { Task = task, Epochs = 8, BatchSize = 16, Seed = 3, WarmKernels = false, Callbacks = [stop] };
        var trainer = new Trainer(Devices.Cpu, Mlp(1), data.SampleShape, new Adam(1e-2), options);
        var result = trainer.Fit(data, data);
        using var final = result.State;
        Assert.Equal(MonitorMode.Min, stop.Mode);
        var h = final.History.Epochs;
        Assert.True(h[^1].Value("val_my_mse") < h[0].Value("val_my_mse"), "the metric fell");
        // MSE loss and the own metric agree on the validation set (same quantity).
        Assert.All(h, m => Assert.Equal(m.ValLoss!.Value, m.Value("val_my_mse")!.Value, 4));
        Assert.Throws<ArgumentException>(() => new Trainer(Devices.Cpu, Mlp(1), data.SampleShape, new Adam(1e-2), options with { Callbacks = [new EarlyStopping("val_accuracy")] }).Fit(data, data).State.Dispose());
    }

    [Fact]
    public void Early_stopping_and_the_best_checkpoint_take_the_direction_a_task_declares()
    {
        Assert.Equal(MonitorMode.Min, new EarlyStopping("val_mae").Mode);
        Assert.Equal(MonitorMode.Min, new EarlyStopping("val_rmse").Mode);
        Assert.Equal(MonitorMode.Max, new EarlyStopping("val_micro_f1").Mode);
        Assert.Equal(MonitorMode.Max, new CheckpointCallback("unused", saveBest: "val_macro_f1").Mode);
        Assert.Equal(MonitorMode.Max, Monitors.Direction("val_my_score", new Declares("my_score", true)));
        Assert.Equal(MonitorMode.Min, Monitors.Direction("val_my_score", new Declares("my_score", false)));

        // val_mae 1.0, 0.8, 0.9, 0.95 with patience 1: the best is epoch 2 (lower), and it stops at epoch 3.
        var data = Linear(64, 1);
        var stop = new EarlyStopping("val_mae", patience: 1);
        var f1 = new EarlyStopping("val_micro_f1", patience: 1);
        var trainer = new Trainer(Devices.Cpu, Mlp(1), data.SampleShape, new Sgd(0.01), new TrainerOptions { Task = new RegressionTask(), WarmKernels = false });
        using var s = trainer.Init();
        stop.OnFitStart(new FitStartInfo(s, 4) { Task = trainer.Task });
        Assert.Throws<ArgumentException>(() => f1.OnFitStart(new FitStartInfo(s, 4) { Task = trainer.Task }));
        EpochMetrics Epoch(int e, double mae) => new(e, 1, double.NaN, 1, null, null, 0, 0.01, null, 0, 1, 64, 0.1) { Metrics = new MetricSet([new("mae", mae), new("val_mae", mae)]) };
        Assert.False(stop.OnEpochEnd(new EpochInfo(Epoch(1, 1.0), s, "m", 0)).Stop);
        Assert.False(stop.OnEpochEnd(new EpochInfo(Epoch(2, 0.8), s, "m", 0)).Stop);
        Assert.True(stop.OnEpochEnd(new EpochInfo(Epoch(3, 0.9), s, "m", 0)).Stop);
        Assert.Equal(2, stop.BestEpoch);
        Assert.Equal(0.8, stop.Best);
    }

    private sealed record Declares(string Metric, bool Higher) : ITrainingTask
    {
        public string Name => "declares";

        public bool UsesTargets => true;

        public IReadOnlyList<TaskMetric> Metrics => [new(Metric, Higher)];

        public string? OutputProblem(Shape output) => null;

        public string? DataProblem(IDataset data, Shape output) => null;

        public Tensor Loss(StepScope step, Tensor prediction, Tensor target, LossReduction reduction) => throw new NotSupportedException();

        public IReadOnlyList<Tensor> Statistics(StepScope step, Tensor prediction, Tensor target) => throw new NotSupportedException();

        public IReadOnlyList<double> Finish(IReadOnlyList<double> totals, long samples) => throw new NotSupportedException();
    }

    [Fact]
    public void Tasks_are_values_and_the_default_task_is_classification_with_the_options_loss()
    {
        Assert.Equal(new RegressionTask { LossFunction = RegressionLoss.Huber }, new RegressionTask { LossFunction = RegressionLoss.Huber });
        Assert.NotEqual(new RegressionTask(), new RegressionTask { Delta = 2 });
        Assert.Equal(new MultiLabelTask(), new MultiLabelTask());
        var ce = new CrossEntropyOptions { Epsilon = 0.1f, Smoothing = LabelSmoothing.OffTarget };
        Assert.Equal(new ClassificationTask { CrossEntropy = ce, TopK = 3 }, new TrainerOptions { Loss = ce, TopK = 3 }.EffectiveTask);
        Assert.Equal("val_loss", ((ITrainingTask)new RegressionTask()).Monitor);
    }

    [Fact]
    public void A_checkpoint_of_one_task_does_not_resume_another()
    {
        var regression = new RunConfig { Dataset = "csv", Task = "regression", Target = "y", DataDir = "a.csv" };
        Assert.Null(Resuming.Incompatibility(regression, regression));
        string? why = Resuming.Incompatibility(regression, regression with { Task = "multilabel" });
        Assert.NotNull(why);
        Assert.Contains("--task regression", why, StringComparison.Ordinal);
        Assert.NotNull(Resuming.Incompatibility(regression, regression with { Target = "z" }));
        Assert.Null(RunConfig.Decode(regression.ToJson().Replace("\"regression\"", "\"ranking\"", StringComparison.Ordinal), out string? problem));
        Assert.Contains("\"Task\"", problem, StringComparison.Ordinal);
    }

    [Fact]
    public void Metrics_logs_round_trip_a_tasks_own_metrics_in_csv_and_jsonl()
    {
        var h = new History(
        [
            new EpochMetrics(1, 2.5, double.NaN, 2.0, null, null, 0, 0.01, null, 0, 10, 320, 0.5) { Metrics = new MetricSet([new("mae", 1.25), new("val_mae", 1.5), new("rmse", double.NaN)]) },
            new EpochMetrics(2, 1.5, double.NaN, 1.0, null, null, 0, 0.01, null, 0, 10, 320, 0.5) { Metrics = new MetricSet([new("mae", 0.75), new("val_mae", 0.5), new("rmse", 1.0 / 3)]) },
        ]);
        string dir = Directory.CreateTempSubdirectory("ilgpu-task-log-").FullName;
        try
        {
            foreach (string ext in new[] { "csv", "jsonl" })
            {
                string path = Path.Combine(dir, "m." + ext);
                MetricsLog.Write(path, h);
                Assert.Equal(h.Epochs, MetricsLog.Read(path).Epochs);
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
