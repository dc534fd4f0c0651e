using IlgpuTrain.Layers;
using Conv2d = IlgpuTrain.Layers.Conv2d;

namespace IlgpuTrain.Properties.Layers;

/// <summary>
/// End to end: layers, autodiff, cross-entropy and a plain SGD update together fit small
/// synthetic problems to near-zero training loss.
/// </summary>
public class LearningProperties
{
    private const int Steps = 300;
    private const float LearningRate = 0.5f;
    private const double TargetLoss = 0.05;

    [Property(MaxTest = 3)]
    public Property Mlp_fits_a_separable_problem_with_plain_sgd() =>
        Prop.ForAll(Gens.LayerSeed.ToArbitrary(), seed =>
        {
            var device = Devices.Cpu;
            var (x, labels) = TwoClasses(seed, 64);
            var model = new Dense(16) >> new Tanh() >> new Dense(2);
            var (p, s) = model.Init(device, new Shape(2), Rng.Create((ulong)seed));
            using (s)
            {
                double first = double.NaN, last = double.NaN;
                for (int t = 0; t < Steps; t++)
                {
                    using var step = device.BeginStep();
                    var xt = step.Upload(x, new Shape(labels.Length, 2));
                    var yt = step.Upload(labels, new Shape(labels.Length));
                    var (loss, grads) = Autodiff.ValueAndGrad(step, p, q => F.CrossEntropy(model.Apply(q, s, xt, Mode.Train, Rng.Create((ulong)t)).Y, yt));
                    using (grads)
                    {
                        // Plain SGD on the flat buffers: theta <- theta - lr g.
                        Elementwise.Axpy(device.Kernels, -LearningRate, grads.Flat32, p.Flat32);
                    }

                    if (t == 0)
                        first = loss.ToHost()[0];
                    if (t == Steps - 1)
                        last = loss.ToHost()[0];
                }

                p.Dispose();
                return (last < TargetLoss).Label($"training loss {first:F4} -> {last:F4} after {Steps} steps (target < {TargetLoss})");
            }
        });

    // Pinned: seed 276787 once failed (eval accuracy 21/32 on new images) when its 32 training
    // images happened to show no horizontal bar at rows 0 and 1 and no vertical bar at columns 2
    // and 7; the training images now show every position of both classes (see Bars).
    [Property(MaxTest = 20, Replay = "10148000830671271702,14673973409087235993,100")]
    public Property Cnn_with_batchnorm_and_dropout_fits_bar_images_and_evaluates_with_running_statistics() =>
        Prop.ForAll(Gens.LayerSeed.ToArbitrary(), seed =>
        {
            const int CnnSteps = 150, Batch = 32;
            var device = Devices.Cpu;
            var (x, labels) = Bars(seed, Batch, everyPosition: true);
            var model = new Conv2d(4, 3, Padding: 1) >> new BatchNorm2d() >> new ReLU() >> new MaxPool2d(2)
                >> new Flatten() >> new IlgpuTrain.Layers.Dropout(0.1f) >> new Dense(2);
            var (p, s) = model.Init(device, new Shape(1, 8, 8), Rng.Create((ulong)seed));
            double first = double.NaN, last = double.NaN;
            for (int t = 0; t < CnnSteps; t++)
            {
                using var step = device.BeginStep();
                var xt = step.Upload(x, new Shape(Batch, 1, 8, 8));
                var yt = step.Upload(labels, new Shape(Batch));
                ParamTree? next = null;
                var (loss, grads) = Autodiff.ValueAndGrad(step, p, q =>
                {
                    var (logits, ns) = model.Apply(q, s, xt, Mode.Train, Rng.Create((ulong)seed).At((uint)t));
                    next = ns;
                    return F.CrossEntropy(logits, yt);
                });
                using (grads)
                    Elementwise.Axpy(device.Kernels, -0.1f, grads.Flat32, p.Flat32);
                if (!ReferenceEquals(next, s))
                {
                    s.Dispose();
                    s = next!;
                }

                if (t == 0)
                    first = loss.ToHost()[0];
                if (t == CnnSteps - 1)
                    last = loss.ToHost()[0];
            }

            // Eval mode normalizes with the running statistics: on the training images it must agree with
            // the fit, and on fresh images of the same classes it must still be far above chance.
            int Correct(float[] images, int[] truth)
            {
                using var step = device.BeginStep();
                var logits = model.Predict(p, s, step.Upload(images, new Shape(Batch, 1, 8, 8))).ToHost();
                return Enumerable.Range(0, Batch).Count(i => (logits[(2 * i) + 1] > logits[2 * i] ? 1 : 0) == truth[i]);
            }

            int seen = Correct(x, labels);
            var (xe, le) = Bars(seed + 7919, Batch, everyPosition: false);
            int fresh = Correct(xe, le);
            p.Dispose();
            s.Dispose();
            return (last < TargetLoss).Label($"training loss {first:F4} -> {last:F4} after {CnnSteps} steps (target < {TargetLoss})")
                .And((seen >= Batch - 1).Label($"eval accuracy {seen}/{Batch} on the training images"))
                .And((fresh >= 3 * Batch / 4).Label($"eval accuracy {fresh}/{Batch} on new images"));
        });

    /// <summary>
    /// 8x8 images with one bright bar (label 0: horizontal, 1: vertical) over uniform noise in [0, 0.3):
    /// at every row and column in turn (a training set that shows each class at each position), or
    /// at a random one.
    /// </summary>
    /// <remarks>
    /// With random positions, 32 training images could miss a position of a class altogether
    /// (seed 276787: 21 of 32 fresh images right), so whether fresh images were classified well
    /// depended on the seed, not on the evaluation path this property checks.
    /// </remarks>
    private static (float[] X, int[] Labels) Bars(int seed, int n, bool everyPosition)
    {
        var r = new Random(seed);
        var x = new float[n * 64];
        var labels = new int[n];
        for (int i = 0; i < n; i++)
        {
            labels[i] = i % 2;
            int at = everyPosition ? (i / 2) % 8 : r.Next(8);
            for (int j = 0; j < 64; j++)
            {
                int row = j / 8, col = j % 8;
                bool bar = labels[i] == 0 ? row == at : col == at;
                x[(i * 64) + j] = (float)((r.NextDouble() * 0.3) + (bar ? 1 : 0));
            }
        }

        return (x, labels);
    }

    /// <summary>Points in [-1, 1]^2 labelled by the side of the line x0 - 0.5 x1 = 0.1, with a margin of 0.2 around it.</summary>
    private static (float[] X, int[] Labels) TwoClasses(int seed, int n)
    {
        var r = new Random(seed);
        var x = new float[2 * n];
        var labels = new int[n];
        for (int i = 0; i < n;)
        {
            double a = (2 * r.NextDouble()) - 1, b = (2 * r.NextDouble()) - 1;
            double side = a - (0.5 * b) - 0.1;
            if (Math.Abs(side) < 0.2)
                continue;
            x[2 * i] = (float)a;
            x[(2 * i) + 1] = (float)b;
            labels[i] = side > 0 ? 1 : 0;
            i++;
        }

        return (x, labels);
    }
}
