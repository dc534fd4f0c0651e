namespace IlgpuTrain.Properties.Support;

/// <summary>One input of a function under a gradient check.</summary>
/// <param name="Name">Its name (a parameter path).</param>
/// <param name="Shape">Its shape.</param>
/// <param name="Values">Its values, row-major.</param>
public sealed record GradInput(string Name, Shape Shape, float[] Values);

/// <summary>
/// Gradient checks: the VJP recorded by the tape against central finite differences of a float64
/// reference forward that shares no code with the kernels.
/// </summary>
public static class GradCheck
{
    /// <summary>
    /// Runs <paramref name="f"/> on <paramref name="device"/> under Autodiff.ValueAndGrad with every
    /// input as a parameter, seeding its output's gradient with <paramref name="dOut"/> (through
    /// sum(y * dOut), whose VJP passes dOut on exactly).
    /// </summary>
    /// <param name="device">Where to run.</param>
    /// <param name="inputs">The differentiable inputs.</param>
    /// <param name="f">The function: gets the step (to upload constants such as targets) and the inputs by name.</param>
    /// <param name="dOut">The output gradient; null for a scalar output seeded with 1.</param>
    /// <returns>The output and the gradient of each input.</returns>
    public static (float[] Y, Dictionary<string, float[]> Grads) Vjp(Device device, IReadOnlyList<GradInput> inputs, Func<StepScope, Func<string, Tensor>, Tensor> f, float[]? dOut)
    {
        using var tree = ParamTree.FromHost(device, inputs.Select(i => KeyValuePair.Create(i.Name, (i.Shape.ToArray(), i.Values))));
        using var step = device.BeginStep();
        float[]? y = null;
        var (_, grads) = Autodiff.ValueAndGrad(step, tree, p =>
        {
            var outTensor = f(step, name => p[name]);
            y = outTensor.ToHost();
            if (dOut is null)
                return outTensor;
            if (dOut.Length != outTensor.Length)
                throw new ArgumentException($"dOut has {dOut.Length} values but the output is {outTensor.Shape}.");
            var seed = step.Upload(dOut, outTensor.Shape);
            return F.Sum(F.Mul(outTensor, seed));
        });
        using (grads)
        {
            var host = grads.ToHost();
            return (y!, inputs.ToDictionary(i => i.Name, i => host[i.Name].Data));
        }
    }

    /// <summary>
    /// Central finite differences in float64 of sum(dOut * reference(inputs)) with respect to
    /// input <paramref name="which"/>.
    /// </summary>
    /// <param name="reference">The float64 forward (inputs in order, output flat).</param>
    /// <param name="inputs">The inputs, in order.</param>
    /// <param name="which">Which input to differentiate.</param>
    /// <param name="dOut">The output gradient.</param>
    /// <param name="h">The step (relative to max(1, |x|)).</param>
    /// <returns>The numerical gradient.</returns>
    public static double[] FiniteDifference(Func<double[][], double[]> reference, double[][] inputs, int which, double[] dOut, double h = 1e-5) =>
        IlgpuTrain.Functional.GradientCheck.FiniteDifference(v => reference(v.ToArray()), inputs, which, dOut, h);

    /// <summary>
    /// The whole check: every input's VJP on the device equals the finite differences of the
    /// float64 reference within |a - r| &lt;= atol + rtol |r|, and the forward equals the reference.
    /// </summary>
    /// <param name="device">Where to run.</param>
    /// <param name="inputs">The differentiable inputs.</param>
    /// <param name="f">The function on the device.</param>
    /// <param name="reference">The float64 reference forward.</param>
    /// <param name="dOut">The output gradient (null: scalar output, seed 1).</param>
    /// <param name="atol">Absolute tolerance of gradients and forward.</param>
    /// <param name="rtol">Relative tolerance.</param>
    /// <returns>A labelled property.</returns>
    public static Property Check(Device device, IReadOnlyList<GradInput> inputs, Func<StepScope, Func<string, Tensor>, Tensor> f, Func<double[][], double[]> reference, float[]? dOut, double atol, double rtol)
    {
        var (y, grads) = Vjp(device, inputs, f, dOut);
        var x = inputs.Select(i => i.Values.Select(v => (double)v).ToArray()).ToArray();
        var yRef = reference(x);
        var seed = dOut?.Select(v => (double)v).ToArray() ?? [1.0];
        var result = Close.All(y, yRef, atol, rtol, "forward vs float64 reference");
        for (int k = 0; k < inputs.Count; k++)
        {
            var numeric = FiniteDifference(reference, x, k, seed);
            result = result.And(Close.All(grads[inputs[k].Name], numeric, atol, rtol, $"d/d{inputs[k].Name} vs finite differences"));
        }

        return result;
    }

    /// <summary>Deterministic pseudo-random floats in [-scale, scale] from a seed.</summary>
    /// <param name="seed">The seed.</param>
    /// <param name="n">How many.</param>
    /// <param name="scale">Half-width.</param>
    /// <returns>The values.</returns>
    public static float[] Values(int seed, long n, double scale = 1)
    {
        var r = new Random(seed);
        var v = new float[n];
        for (long i = 0; i < n; i++)
            v[i] = (float)(scale * ((2 * r.NextDouble()) - 1));
        return v;
    }
}
