using IlgpuTrain.Optimizers;

namespace IlgpuTrain.Properties.Optimizers;

/// <summary>ClipGradNorm and ClipGradValue: PyTorch's clip_grad_norm_ (returns the pre-clip norm) and clip_grad_value_.</summary>
public class GradientClippingProperties
{
    // See ClipByGlobalNormProperties: a few ulps of the float64 norm.
    private const double NormRtol = 1e-6;

    // PyTorch takes the norm of per-tensor norms and we take one flat norm: the sums round
    // differently, by a few float32 ulps.
    private const double TorchRtol = 1e-6;

    private static ParamTree SmallTree(Device d) => ParamTree.FromHost(d, new Dictionary<string, (int[] Shape, float[] Data)>
    {
        ["w"] = ([2, 3], [0.5f, -1.5f, 2f, 3f, -0.25f, 1f]),
        ["b"] = ([3], [-2f, 0.75f, 4f]),
    });

    [Property(MaxTest = 30)]
    public Property Returns_the_pre_clip_norm_and_clips_like_ClipByGlobalNorm() =>
        Prop.ForAll(Trees.Layouts.ToArbitrary(), Gen.Elements(0.1, 1.0, 10.0, 1e4).ToArbitrary(), Gen.Choose(0, 10_000).ToArbitrary(), (layout, maxNorm, seed) =>
        {
            var prop = true.Label("start");
            foreach (var d in Devices.All)
            {
                using var g = Trees.Random(d, layout, seed, -3f, 3f);
                var host = g.Flat();
                double exact = Math.Sqrt(host.Sum(x => (double)x * x));
                float total = GradientClipping.ClipGradNorm(g, maxNorm);
                using var p = g.ZerosLike();
                var opt = new ClipByGlobalNorm(maxNorm);
                var (u, s) = opt.Update(Trees.FromFlat(p, host), opt.Init(p), p, UpdateContext.None);
                using (u)
                using (s)
                {
                    prop = prop.And(Close.Scalar(total, exact, 1e-30, NormRtol, $"{Devices.Describe(d)} returned norm"))
                        .And(Close.All(g.Flat(), u.Flat(), 0, 0, $"{Devices.Describe(d)} same clipped bits as ClipByGlobalNorm"));
                }
            }
            return prop;
        });

    [Property(MaxTest = 30)]
    public Property Inf_norm_is_the_max_abs_and_clips_by_it() =>
        Prop.ForAll(Trees.Layouts.ToArbitrary(), Gen.Elements(0.1, 1.0, 10.0).ToArbitrary(), Gen.Choose(0, 10_000).ToArbitrary(), (layout, maxNorm, seed) =>
        {
            var d = Devices.Cpu;
            using var g = Trees.Random(d, layout, seed, -3f, 3f);
            var host = g.Flat();
            float maxAbs = host.Length == 0 ? 0f : host.Max(Math.Abs);
            float total = GradientClipping.ClipGradNorm(g, maxNorm, double.PositiveInfinity);
            double factor = Math.Min(1, maxNorm / (maxAbs + 1e-6));
            return Close.Scalar(total, maxAbs, 0, 0, "max |g|, exactly")
                .And(Close.All(g.Flat(), host.Select(x => x * factor).ToArray(), 1e-30, 4e-7, "g * min(1, max/(|g|inf + 1e-6))"));
        });

    // Values from PyTorch 1.13 (CPU), /usr/bin/python3:
    //   import torch, numpy as np
    //   def run(max_norm, norm_type):
    //       w = torch.zeros(2, 3, requires_grad=True); b = torch.zeros(3, requires_grad=True)
    //       w.grad = torch.tensor([[0.5, -1.5, 2.0], [3.0, -0.25, 1.0]]); b.grad = torch.tensor([-2.0, 0.75, 4.0])
    //       total = torch.nn.utils.clip_grad_norm_([w, b], max_norm, norm_type)
    //       g = torch.cat([w.grad.flatten(), b.grad])
    //       return repr(np.float32(total.item())), ", ".join(f"{np.float32(v)!r}f" for v in g.tolist())
    //   for mn, nt in [(1.0, 2.0), (1.0, float('inf')), (100.0, 2.0), (2.5, float('inf'))]:
    //       print(mn, nt, *run(mn, nt))
    public static TheoryData<double, double, float, float[]> TorchRuns() => new()
    {
        { 1.0, 2.0, 6.093029f, [0.08206098f, -0.24618293f, 0.3282439f, 0.49236587f, -0.04103049f, 0.16412196f, -0.3282439f, 0.12309147f, 0.6564878f] },
        { 1.0, double.PositiveInfinity, 4.0f, [0.12499997f, -0.3749999f, 0.49999988f, 0.7499998f, -0.062499985f, 0.24999994f, -0.49999988f, 0.18749996f, 0.99999976f] },
        { 100.0, 2.0, 6.093029f, [0.5f, -1.5f, 2.0f, 3.0f, -0.25f, 1.0f, -2.0f, 0.75f, 4.0f] },
        { 2.5, double.PositiveInfinity, 4.0f, [0.31249994f, -0.9374998f, 1.2499998f, 1.8749996f, -0.15624997f, 0.6249999f, -1.2499998f, 0.4687499f, 2.4999995f] },
    };

    [Theory]
    [MemberData(nameof(TorchRuns))]
    public void Matches_pytorch_clip_grad_norm(double maxNorm, double normType, float expectedTotal, float[] expected)
    {
        using var g = SmallTree(Devices.Cpu);
        float total = GradientClipping.ClipGradNorm(g, maxNorm, normType);
        Assert.True(Math.Abs(total - expectedTotal) <= TorchRtol * expectedTotal, $"total {total:R} vs PyTorch {expectedTotal:R}");
        var (ok, label) = Close.Check(g.Flat(), expected, 1e-30, TorchRtol, $"clipped grads, max_norm {maxNorm}, norm_type {normType}");
        Assert.True(ok, label);
    }

    [Theory]
    [InlineData(float.NaN, 2.0)]
    [InlineData(float.PositiveInfinity, 2.0)]
    [InlineData(float.NaN, double.PositiveInfinity)]
    [InlineData(float.NegativeInfinity, double.PositiveInfinity)]
    public void Non_finite_norm_throws_when_asked_and_leaves_the_grads(float bad, double normType)
    {
        var d = Devices.Cpu;
        using var g = ParamTree.FromHost(d, new Dictionary<string, (int[] Shape, float[] Data)> { ["w"] = ([3], [1f, bad, 2f]) });
        var before = g.Flat();
        var e = Assert.Throws<InvalidOperationException>(() => GradientClipping.ClipGradNorm(g, 1.0, normType, errorIfNonfinite: true));
        Assert.Contains("non-finite", e.Message);
        Assert.Equal(before, g.Flat());
        Assert.False(float.IsFinite(GradientClipping.ClipGradNorm(g, 1.0, normType)));
    }

    [Fact]
    public void Unsupported_norm_types_and_bad_max_norms_are_refused()
    {
        using var g = SmallTree(Devices.Cpu);
        foreach (double nt in new[] { 1.0, 3.0, 0.0, double.NegativeInfinity, double.NaN })
            Assert.Contains("norm_type must be 2 or +inf", Assert.Throws<ArgumentOutOfRangeException>(() => GradientClipping.ClipGradNorm(g, 1.0, nt)).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => GradientClipping.ClipGradNorm(g, -1.0));
        Assert.Throws<ArgumentOutOfRangeException>(() => GradientClipping.ClipGradValue(g, -1.0));
    }

    [Fact]
    public void Empty_tree_has_norm_zero_and_clip_grad_value_clamps()
    {
        var d = Devices.Cpu;
        using var empty = ParamTree.FromHost(d, new Dictionary<string, (int[] Shape, float[] Data)> { ["w"] = ([0], []) });
        Assert.Equal(0f, GradientClipping.ClipGradNorm(empty, 1.0));
        Assert.Equal(0f, GradientClipping.ClipGradNorm(empty, 1.0, double.PositiveInfinity));
        using var g = SmallTree(d);
        GradientClipping.ClipGradValue(g, 1.0);
        Assert.Equal([0.5f, -1f, 1f, 1f, -0.25f, 1f, -1f, 0.75f, 1f], g.Flat());
    }
}
