using IlgpuTrain.Layers;
using IlgpuTrain.Optimizers;
using Dropout = IlgpuTrain.Layers.Dropout;
using IlgpuTrain.Training;

namespace IlgpuTrain.Properties.Training;

/// <summary>
/// The training doctor on the tutorial's own examples and on curves of real runs: each verdict names
/// its evidence and the tutorial's fixes.
/// </summary>
/// <remarks>
/// The curves under Training/Curves are the metrics.csv of real 5-epoch Fashion-MNIST MLP runs on the
/// CPU (60,000 training samples, validation on the 10,000 test samples, seed 0), written by
/// <c>ilgpu-train train --output DIR</c> with these options:
/// default.csv: none (AdamW, one-cycle, 88.3%); sgd-lr1e-4.csv: --optimizer sgd --lr 0.0001
/// --schedule constant; sgd-lr0.002-onecycle.csv: --optimizer sgd --lr 0.002;
/// sgd-lr0.002-constant.csv: the same with --schedule constant; sgd-lr2.csv: --optimizer sgd --lr 2
/// --schedule constant --clip 0; adam-lr0.05.csv: --optimizer adam --lr 0.05 --schedule constant
/// --clip 0; dropout0.9-wd0.5.csv: --dropout 0.9 --weight-decay 0.5; overfit-1000-samples.csv:
/// --train-limit 1000 --dropout 0 --label-smoothing 0 --weight-decay 0 --schedule constant --lr 0.001
/// --epochs 30.
/// </remarks>
public class DoctorProperties
{
    private const int C = 10;

    private static History Real(string name) => MetricsLog.Read(Path.Combine(AppContext.BaseDirectory, "Training", "Curves", name + ".csv"));

    private static IReadOnlyList<Finding> Diagnose(History h) => CurveDiagnosis.Diagnose(h, C);

    // A history whose epochs end at the given accuracies, from the tutorial's table (losses from a plain decaying curve).
    private static History Accuracies(double train, double val) =>
        new([.. Gens.Curves(5, i => 0.3 + (1.5 * Math.Exp(-i)), i => 0.35 + (1.5 * Math.Exp(-i))).Epochs
            .Select(m => m with { TrainAccuracy = train, ValAccuracy = val })]);

    [Theory]
    [InlineData("default", FindingKind.Healthy)]
    [InlineData("sgd-lr1e-4", FindingKind.LearningRateTooLow)]
    [InlineData("sgd-lr0.002-onecycle", FindingKind.Underfitting)]
    [InlineData("sgd-lr0.002-constant", FindingKind.Underfitting)]
    [InlineData("sgd-lr2", FindingKind.LearningRateTooHigh)]
    [InlineData("adam-lr0.05", FindingKind.LearningRateTooHigh)]
    [InlineData("dropout0.9-wd0.5", FindingKind.Underfitting)]
    [InlineData("overfit-1000-samples", FindingKind.Overfitting)]
    public void Real_runs_get_the_verdict_their_settings_call_for(string run, FindingKind expected)
    {
        var f = Diagnose(Real(run));
        Assert.True(f.Count == 1 && f[0].Kind == expected, $"{run}: expected only {expected}, got\n{CurveDiagnosis.Format(f)}");
        Assert.False(string.IsNullOrWhiteSpace(f[0].Evidence));
        Assert.True(expected == FindingKind.Healthy || f[0].Suggestions.Count > 0, CurveDiagnosis.Format(f));
    }

    [Fact]
    public void The_tutorials_slow_curve_is_a_learning_rate_too_low()
    {
        double[] loss = [2.0, 1.9, 1.8, 1.7];
        var f = Diagnose(Gens.Curves(loss.Length, i => loss[i], _ => null));
        Assert.True(f.Count == 1 && f[0].Kind == FindingKind.LearningRateTooLow, CurveDiagnosis.Format(f));
        Assert.Contains("2, 1.9, 1.8, 1.7", f[0].Evidence);
        Assert.Contains(f[0].Suggestions, s => s.Contains("multiply it by 10") && s.Contains("find-lr"));
        Assert.Contains(f[0].Suggestions, s => s.Contains("Adam"));
    }

    [Fact]
    public void The_tutorials_oscillating_curve_is_a_learning_rate_too_high()
    {
        double[] loss = [1.5, 2.0, 1.5, 1.0, 1.5, 1.0, 0.5];
        var f = Diagnose(Gens.Curves(loss.Length, i => loss[i], _ => null));
        Assert.True(f.Count >= 1 && f[0].Kind == FindingKind.LearningRateTooHigh, CurveDiagnosis.Format(f));
        Assert.Contains(f[0].Suggestions, s => s.Contains("divide it by 10"));
        Assert.Contains(f[0].Suggestions, s => s.Contains("warmup"));
        Assert.Contains(f[0].Suggestions, s => s.Contains("clip gradients"));
    }

    [Theory]
    [InlineData(0.70, 0.68, FindingKind.Underfitting)]
    [InlineData(0.99, 0.75, FindingKind.Overfitting)]
    [InlineData(0.95, 0.93, FindingKind.Healthy)]
    public void The_tutorials_accuracy_table(double train, double val, FindingKind expected)
    {
        var f = Diagnose(Accuracies(train, val));
        Assert.True(f.Count == 1 && f[0].Kind == expected, CurveDiagnosis.Format(f));
        string pct(double a) => a.ToString("G4", System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(expected == FindingKind.Healthy || (f[0].Evidence.Contains(pct(train)) && f[0].Evidence.Contains(pct(val))), f[0].Evidence);
        if (expected == FindingKind.Overfitting)
        {
            Assert.Contains("24 points", f[0].Evidence);
            Assert.Contains(f[0].Suggestions, s => s.Contains("early stopping"));
            Assert.Contains(f[0].Suggestions, s => s.Contains("dropout (0.3-0.5)"));
            Assert.Contains(f[0].Suggestions, s => s.Contains("augment"));
        }
        else if (expected == FindingKind.Underfitting)
        {
            Assert.Contains(f[0].Suggestions, s => s.Contains("bigger model"));
            Assert.Contains(f[0].Suggestions, s => s.Contains("more epochs"));
        }
    }

    // The accuracy rules against their thresholds, over the grid of final accuracies in whole percent (points exactly
    // on a threshold, where the float difference of two percentages may round either way, are left out).
    [Property(MaxTest = 200)]
    public Property Accuracy_verdicts_follow_their_thresholds() =>
        Prop.ForAll(Gen.Choose(30, 100).ToArbitrary(), Gen.Choose(30, 100).ToArbitrary(), (t, v) =>
        {
            if (t - v == 5 || t - v == 10 || t == 80)
                return true.ToProperty();
            double train = t / 100.0, val = v / 100.0;
            var kinds = Diagnose(Accuracies(train, val)).Select(f => f.Kind).ToList();
            bool over = t - v > 10;
            bool under = t < 80 && t - v < 5;
            return (kinds.Contains(FindingKind.Overfitting) == over && kinds.Contains(FindingKind.Underfitting) == under
                    && kinds.Contains(FindingKind.Healthy) == (!over && !under))
                .Label($"train {train} val {val}: {string.Join(", ", kinds)}");
        });

    // Short live runs on a Fashion-MNIST subset, one per picture: the verdict follows from the settings.
    [Theory]
    [InlineData("adamw", 3e-3, 0.2f, 4000, 5, FindingKind.Healthy)]
    [InlineData("sgd", 2.0, 0f, 4000, 4, FindingKind.LearningRateTooHigh)]
    [InlineData("sgd", 1e-4, 0f, 4000, 5, FindingKind.LearningRateTooLow)]
    [InlineData("adam", 1e-3, 0f, 500, 25, FindingKind.Overfitting)]
    public void Short_real_runs_get_the_verdict_their_settings_call_for(string optimizer, double lr, float dropout, int samples, int epochs, FindingKind expected)
    {
        if (!File.Exists(Path.Combine(FashionMnist.DefaultDirectory, "train-images-idx3-ubyte.gz")) && Environment.GetEnvironmentVariable(FashionMnist.EnvironmentVariable) is null)
            Assert.Fail($"Fashion-MNIST is not installed: `apt-get install dataset-fashion-mnist` (CI does), or set {FashionMnist.EnvironmentVariable}.");
        var (train, test) = FashionMnist.Load();
        var data = train.Take(samples);
        Layer model = new Flatten() >> new Dense(128) >> new ReLU();
        if (dropout > 0)
            model = model >> new Dropout(dropout);
        model = model >> new Dense(10);
        int steps = epochs * ((samples + 63) / 64);
        IGradientTransformation opt = optimizer switch
        {
            "adamw" => new AdamW(new OneCycleLR(lr, steps)),
            "adam" => new Adam(lr),
            _ => new Sgd(lr),
        };
        var trainer = new Trainer(Devices.Cpu, model, data.SampleShape, opt, new TrainerOptions { Epochs = epochs, BatchSize = 64, Seed = 3 });
        using var final = trainer.Fit(data, test.Take(2000)).State;
        var f = Diagnose(final.History);
        Assert.True(f.Count == 1 && f[0].Kind == expected, $"expected {expected}, got\n{CurveDiagnosis.Format(f)}");
    }
}
