using IlgpuTrain.Optimizers;

namespace IlgpuTrain.Properties.Support;

/// <summary>Generators for the adaptive optimizers (Adam, AdamW, RMSProp, Adagrad) and their kernels.</summary>
public static partial class Gens
{
    /// <summary>A decay rate in [0, 1): an edge (0, 0.5, 0.9, 0.999) half the time, otherwise uniform in [0, 0.999].</summary>
    public static Gen<double> Beta { get; } = Gen.OneOf(Gen.Elements(0.0, 0.5, 0.9, 0.999), Gen.Choose(0, 999).Select(k => k / 1000.0));

    /// <summary>An eps: 0, PyTorch's defaults, or a value large enough to matter.</summary>
    public static Gen<double> Eps { get; } = Gen.Elements(0.0, 1e-10, 1e-8, 1e-3, 0.1);

    /// <summary>A 1-based step t, small or large (bias corrections near 0 and near 1).</summary>
    public static Gen<int> AdamStep { get; } = Gen.OneOf(Gen.Choose(1, 5), Gen.Elements(10, 100, 10_000));

    /// <summary>A byte mask of length <paramref name="n"/> (about half ones), or none (empty).</summary>
    /// <param name="n">Length.</param>
    /// <returns>The generator.</returns>
    public static Gen<byte[]> MaybeMask(int n) =>
        Gen.OneOf(Gen.Constant(Array.Empty<byte>()), Gen.Choose(int.MinValue, int.MaxValue).Select(seed =>
        {
            var rng = new Random(seed);
            return Enumerable.Range(0, n).Select(_ => (byte)rng.Next(2)).ToArray();
        }));

    /// <summary>The decay masks the optimizer properties try (null means every parameter).</summary>
    public static Gen<ParamMask?> DecayMask { get; } =
        Gen.Elements<ParamMask?>(null, ParamMask.ByRank(2), ParamMask.ByName("*.bias"), ParamMask.None);
}

/// <summary>start + step * t: a schedule that moves every step and can leave a hyperparameter's range.</summary>
/// <param name="Start">Value at t = 0.</param>
/// <param name="Step">Change per update.</param>
public sealed record Ramp(double Start, double Step) : IlgpuTrain.Optimizers.Schedule
{
    /// <inheritdoc/>
    public override double At(long step) => Start + (Step * step);
}

/// <summary>Which path an optimizer run takes.</summary>
public enum StepPath
{
    /// <summary>Update then ApplyUpdates (the chain of primitives).</summary>
    Generic,

    /// <summary>The fused one-launch step.</summary>
    Fused,

    /// <summary>Fused on even steps, generic on odd ones (the state must carry over).</summary>
    Alternate,
}

/// <summary>Runs optimizers for several steps on small trees, and the fixed problem of the PyTorch known-value scripts.</summary>
public static class AdaptiveRuns
{
    /// <summary>
    /// The parameters of the known-value scripts, flat in layout order: w (2, 3) then b (3).
    /// PyTorch: <c>w = torch.tensor([[0.5, -1.0, 2.0], [-0.25, 0.75, -1.5]]); b = torch.tensor([0.1, -0.2, 0.3])</c>.
    /// </summary>
    public static readonly float[] KnownStart = [0.5f, -1f, 2f, -0.25f, 0.75f, -1.5f, 0.1f, -0.2f, 0.3f];

    /// <summary>The known-value tree: "w" (2, 3) and "b" (3).</summary>
    /// <param name="device">The device.</param>
    /// <returns>The tree.</returns>
    public static ParamTree KnownTree(Device device) =>
        ParamTree.FromHost(device, new Dictionary<string, (int[] Shape, float[] Data)>
        {
            ["w"] = ([2, 3], KnownStart[..6]),
            ["b"] = ([3], KnownStart[6..]),
        });

    /// <summary>
    /// The gradient of the known-value scripts at 0-based step t, in float32 as PyTorch computes it:
    /// <c>g = flat * 0.5 + torch.tensor([0.3 * math.sin(1.3 * i + 0.7 * t) for i in range(9)])</c>.
    /// </summary>
    /// <param name="p">Current flat parameters.</param>
    /// <param name="t">Step.</param>
    /// <returns>The gradient.</returns>
    public static float[] KnownGrad(float[] p, int t) =>
        p.Select((x, i) => (x * 0.5f) + (float)(0.3 * Math.Sin((1.3 * i) + (0.7 * t)))).ToArray();

    /// <summary>A gradient that ignores the parameters: uniform in [-1, 1] from (seed, t).</summary>
    /// <param name="seed">Seed.</param>
    /// <returns>The gradient function.</returns>
    public static Func<float[], int, float[]> RandomGrad(int seed) => (p, t) => Gens.Random((seed * 7919) + t, p.Length, -1f, 1f);

    /// <summary>Runs <paramref name="steps"/> steps from a copy of <paramref name="start"/>.</summary>
    /// <param name="opt">The optimizer (its <see cref="FusionPlan"/> must fuse something unless the path is Generic).</param>
    /// <param name="start">Start parameters (not consumed).</param>
    /// <param name="steps">Steps.</param>
    /// <param name="grad">Gradient of (flat parameters, 0-based step).</param>
    /// <param name="path">Which path each step takes.</param>
    /// <returns>The final flat parameters and the live state (dispose it).</returns>
    public static (float[] Params, OptState State) Run(IGradientTransformation opt, ParamTree start, int steps, Func<float[], int, float[]> grad, StepPath path)
    {
        if (path != StepPath.Generic && FusionPlan.For(opt).Tail == PlanTail.ApplyUpdates)
            throw new ArgumentException($"{opt.Name} has nothing to fuse ({FusionPlan.For(opt).Describe()}); a fused run would test the generic path twice.", nameof(opt));
        var p = start.Clone();
        var s = opt.Init(p);
        try
        {
            for (int t = 0; t < steps; t++)
            {
                var g = Trees.FromFlat(p, grad(p.Flat(), t));
                bool fused = path == StepPath.Fused || (path == StepPath.Alternate && t % 2 == 0);
                if (fused)
                {
                    (p, s) = opt.Step(p, g, s);
                }
                else
                {
                    var (u, next) = opt.Update(g, s, p, UpdateContext.None);
                    s = next;
                    p = p.ApplyUpdates(u);
                    u.Dispose();
                }
            }
            return (p.Flat(), s);
        }
        catch
        {
            s.Dispose();
            throw;
        }
        finally
        {
            p.Dispose();
        }
    }

    /// <summary>The flat parameters after a run (the state is disposed).</summary>
    /// <param name="opt">The optimizer.</param>
    /// <param name="start">Start parameters (not consumed).</param>
    /// <param name="steps">Steps.</param>
    /// <param name="grad">Gradient of (flat parameters, 0-based step).</param>
    /// <param name="path">Which path each step takes.</param>
    /// <returns>The final flat parameters.</returns>
    public static float[] Final(IGradientTransformation opt, ParamTree start, int steps, Func<float[], int, float[]> grad, StepPath path)
    {
        var (p, s) = Run(opt, start, steps, grad, path);
        s.Dispose();
        return p;
    }

    /// <summary>
    /// A run that alternates fused and generic steps ends where the generic run ends, with the same
    /// state structure: the two paths are interchangeable mid-run (a property every alias keeps).
    /// </summary>
    /// <param name="opt">The optimizer (fresh state per run).</param>
    /// <param name="layout">The parameter layout.</param>
    /// <param name="seed">Seed for parameters and gradients.</param>
    /// <param name="steps">Steps per run.</param>
    /// <param name="atol">Absolute tolerance between the paths.</param>
    /// <param name="rtol">Relative tolerance between the paths.</param>
    /// <param name="extra">More checks on the two final states (mixed, generic), or null.</param>
    /// <returns>The labelled property.</returns>
    public static Property SwitchingEqualsGeneric(IGradientTransformation opt, (int[] Shape, string Path)[] layout, int seed, int steps, double atol, double rtol, Func<OptState, OptState, Property>? extra = null)
    {
        using var p = Trees.Random(Devices.Cpu, layout, seed);
        var grad = RandomGrad(seed);
        var (mixed, ms) = Run(opt, p, steps, grad, StepPath.Alternate);
        var (generic, gs) = Run(opt, p, steps, grad, StepPath.Generic);
        using (ms)
        using (gs)
        {
            string a = Describe(ms), b = Describe(gs);
            var prop = (a == b).Label($"state shapes: {a} versus {b}")
                .And(Close.All(mixed, generic, atol, rtol, "parameters"));
            return extra is null ? prop : prop.And(extra(ms, gs));
        }
    }

    /// <summary>The shape of a state: each node's path, type and count (where it has one), depth first.</summary>
    /// <param name="state">The state.</param>
    /// <returns>One line per node.</returns>
    public static string Describe(OptState state)
    {
        var lines = new List<string>();
        Walk(state, "");
        return string.Join("; ", lines);

        void Walk(OptState s, string path)
        {
            var count = s.GetType().GetProperty("Count")?.GetValue(s);
            lines.Add($"{path}:{s.GetType().Name}{(count is null ? "" : $"#{count}")}");
            foreach (var (name, child) in s.Children)
                Walk(child, path + "/" + name);
        }
    }
}
