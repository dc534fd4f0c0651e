using IlgpuTrain.Layers;

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

    // The CNN case goes here once Conv2d and pooling land: Conv2d >> ReLU >> MaxPool2d >> Flatten >> Dense
    // fitting a synthetic image problem (for instance a bright horizontal versus vertical bar) to near-zero loss.

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
