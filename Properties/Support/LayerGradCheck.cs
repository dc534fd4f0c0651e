using IlgpuTrain.Layers;

namespace IlgpuTrain.Properties.Support;

/// <summary>
/// Gradient checks of whole layers: runs <c>model.Apply</c> under Autodiff.ValueAndGrad with the
/// input as one more parameter (named <see cref="InputName"/>), so the VJP with respect to the
/// input and to every parameter is compared with central finite differences of a float64 reference.
/// </summary>
public static class LayerGradCheck
{
    /// <summary>The path the input takes in the differentiated tree; no layer names a parameter so.</summary>
    public const string InputName = "x";

    /// <summary>The output and the gradients (input and parameters) of sum(dOut * model(x)).</summary>
    /// <param name="device">Where to run.</param>
    /// <param name="model">The model.</param>
    /// <param name="parameters">Its parameters on the host, path to (shape, data), in layout order.</param>
    /// <param name="state">Its state (from Init).</param>
    /// <param name="xShape">Batch input shape (N, ...).</param>
    /// <param name="x">Input values.</param>
    /// <param name="dOut">Output gradient.</param>
    /// <param name="mode">Train or Eval.</param>
    /// <param name="trainable">Which parameters train (the input always does); null for all.</param>
    /// <returns>The output and each gradient by path (<see cref="InputName"/> for the input).</returns>
    public static (float[] Y, Dictionary<string, float[]> Grads) Vjp(Device device, Layer model, IReadOnlyDictionary<string, (int[] Shape, float[] Data)> parameters, ParamTree state, Shape xShape, float[] x, float[] dOut, Mode mode = Mode.Train, ParamFilter? trainable = null)
    {
        var entries = new List<KeyValuePair<string, (int[] Shape, float[] Data)>> { KeyValuePair.Create(InputName, (xShape.ToArray(), x)) };
        entries.AddRange(parameters);
        using var tree = ParamTree.FromHost(device, entries);
        using var step = device.BeginStep();
        float[]? y = null;
        var options = trainable is null ? null : new GradOptions { Trainable = ParamFilter.Where("x or " + trainable.Description, p => p == InputName || trainable.Matches(p)) };
        var (_, grads) = Autodiff.ValueAndGrad(step, tree, p =>
        {
            var (outTensor, newState) = model.Apply(p, state, p[InputName], mode, Rng.Create(7));
            if (!ReferenceEquals(newState, state))
                newState.Dispose();
            y = outTensor.ToHost();
            if (dOut.Length != outTensor.Length)
                throw new ArgumentException($"dOut has {dOut.Length} values but the output is {outTensor.Shape}.");
            return F.Sum(F.Mul(outTensor, step.Upload(dOut, outTensor.Shape)));
        }, options);
        using (grads)
        {
            var host = grads.ToHost();
            return (y!, host.ToDictionary(kv => kv.Key, kv => kv.Value.Data));
        }
    }

    /// <summary>
    /// Initializes <paramref name="model"/> for <paramref name="sample"/> from <paramref name="seed"/>,
    /// draws an input (N, ...sample) and dOut, and checks the forward against
    /// <paramref name="reference"/> and every gradient against its finite differences.
    /// </summary>
    /// <param name="device">Where to run.</param>
    /// <param name="model">The model.</param>
    /// <param name="sample">Per-sample input shape.</param>
    /// <param name="batch">N.</param>
    /// <param name="seed">Seed of parameters, input and dOut.</param>
    /// <param name="reference">float64 forward: values by path (<see cref="InputName"/> and the parameter paths), output flat.</param>
    /// <param name="atol">Absolute tolerance.</param>
    /// <param name="rtol">Relative tolerance.</param>
    /// <param name="input">The input values, when the default (uniform in [-1, 1]) is unsuitable (kinks); null for the default.</param>
    /// <returns>A labelled property.</returns>
    public static Property Check(Device device, Layer model, Shape sample, int batch, int seed, Func<IReadOnlyDictionary<string, double[]>, double[]> reference, double atol, double rtol, float[]? input = null)
    {
        var xShape = new Shape([batch, .. sample]);
        var outShape = new Shape([batch, .. model.OutputShape(sample)]);
        var (ptree, state) = model.Init(device, sample, Rng.Create((ulong)seed));
        Dictionary<string, (int[] Shape, float[] Data)> host;
        using (ptree)
            host = ptree.ToHost();
        using (state)
        {
            var x = input ?? GradCheck.Values(seed + 11, xShape.Length);
            var dOut = GradCheck.Values(seed + 13, outShape.Length);
            var (y, grads) = Vjp(device, model, host, state, xShape, x, dOut);

            var names = new List<string> { InputName };
            names.AddRange(host.Keys);
            var values = new double[names.Count][];
            values[0] = x.Select(v => (double)v).ToArray();
            for (int i = 1; i < names.Count; i++)
                values[i] = host[names[i]].Data.Select(v => (double)v).ToArray();
            double[] Reference(double[][] v) => reference(names.Select((n, i) => (n, i)).ToDictionary(t => t.n, t => v[t.i]));
            var seedOut = dOut.Select(v => (double)v).ToArray();

            var result = Close.All(y, Reference(values), atol, rtol, "forward vs float64 reference");
            for (int k = 0; k < names.Count; k++)
                result = result.And(Close.All(grads[names[k]], GradCheck.FiniteDifference(Reference, values, k, seedOut), atol, rtol, $"d/d{names[k]} vs finite differences"));
            return result.Label($"{model.Describe()} on {xShape}, seed {seed}, {Devices.Describe(device)}");
        }
    }

    /// <summary>Inputs whose magnitudes lie in [0.05, 1] with random signs, so a kink at 0 (ReLU) is never within a finite-difference step.</summary>
    /// <param name="seed">Seed.</param>
    /// <param name="n">How many.</param>
    /// <returns>The values.</returns>
    public static float[] AwayFromZero(int seed, long n)
    {
        var r = new Random(seed);
        var v = new float[n];
        for (long i = 0; i < n; i++)
            v[i] = (float)((r.Next(2) == 0 ? -1 : 1) * (0.05 + (0.95 * r.NextDouble())));
        return v;
    }
}

/// <summary>float64 forwards of the layers, written from the PyTorch definitions with plain loops (no kernel code).</summary>
public static class LayerReference
{
    /// <summary>y[r, f] = b[f] + sum_d x[r, d] W[f, d] over every leading row r.</summary>
    /// <param name="x">Input (rows, D).</param>
    /// <param name="w">Weight (F, D).</param>
    /// <param name="b">Bias (F) or null.</param>
    /// <param name="d">D.</param>
    /// <param name="f">F.</param>
    /// <returns>(rows, F).</returns>
    public static double[] Dense(double[] x, double[] w, double[]? b, int d, int f)
    {
        int rows = d == 0 ? 0 : x.Length / d;
        var y = new double[rows * f];
        for (int r = 0; r < rows; r++)
        {
            for (int o = 0; o < f; o++)
            {
                double s = b?[o] ?? 0;
                for (int k = 0; k < d; k++)
                    s += x[(r * d) + k] * w[(o * d) + k];
                y[(r * f) + o] = s;
            }
        }

        return y;
    }

    /// <summary>An elementwise function.</summary>
    /// <param name="x">Input.</param>
    /// <param name="f">The function.</param>
    /// <returns>f(x) elementwise.</returns>
    public static double[] Map(double[] x, Func<double, double> f) => x.Select(f).ToArray();

    /// <summary>Softmax (or log-softmax) over rows of length <paramref name="c"/>.</summary>
    /// <param name="x">Input (rows, C).</param>
    /// <param name="c">C.</param>
    /// <param name="log">Log-softmax instead.</param>
    /// <returns>Same shape.</returns>
    public static double[] Softmax(double[] x, int c, bool log)
    {
        var y = new double[x.Length];
        for (int r = 0; c > 0 && r < x.Length / c; r++)
        {
            var row = x.AsSpan(r * c, c);
            double max = double.NegativeInfinity;
            foreach (var v in row)
                max = Math.Max(max, v);
            double z = 0;
            foreach (var v in row)
                z += Math.Exp(v - max);
            for (int k = 0; k < c; k++)
                y[(r * c) + k] = log ? row[k] - max - Math.Log(z) : Math.Exp(row[k] - max) / z;
        }

        return y;
    }

    /// <summary>GELU, erf form: x Phi(x) = 0.5 x (1 + erf(x / sqrt 2)), with MathNet's erf.</summary>
    /// <param name="x">Input.</param>
    /// <returns>GELU(x).</returns>
    public static double Gelu(double x) => 0.5 * x * (1 + MathNet.Numerics.SpecialFunctions.Erf(x / Math.Sqrt(2)));

    /// <summary>GELU, tanh form: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).</summary>
    /// <param name="x">Input.</param>
    /// <returns>GELU_tanh(x).</returns>
    public static double GeluTanh(double x) => 0.5 * x * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (x + (0.044715 * x * x * x))));

    /// <summary>The logistic function.</summary>
    /// <param name="x">Input.</param>
    /// <returns>1 / (1 + e^-x).</returns>
    public static double Sigmoid(double x) => 1 / (1 + Math.Exp(-x));
}
