using IlgpuTrain.Kernels.Runtime;

namespace IlgpuTrain.Training;

/// <summary>
/// The kernels a training step of a model uses, so a <see cref="Trainer"/> can compile them on a
/// background thread while the caller initializes parameters and loads the first batch.
/// </summary>
/// <remarks>
/// The list is by kernel name (<see cref="KernelDef.Name"/>), per layer type, in the order a step
/// first launches them; names no definition carries are skipped, so a renamed kernel costs only
/// its warm-up, never a failure. <c>{V}</c> stands for the variant (Cpu or Gpu) the host runs;
/// a name ending in "." takes every kernel of that file of the host's variant. The lists were
/// recorded from the first step of each model on the CPU accelerator.
/// </remarks>
internal static class StepKernels
{
    // Every step: input fill, loss, loss scale, metrics, gradient clipping and the optimizer update.
    private static readonly string[] Common =
    [
        "Elementwise.FillKernel",
        "CrossEntropy.ForwardKernel", "CrossEntropy.ReduceKernel", "CrossEntropy.MeanScaleKernel", "CrossEntropy.BackwardKernel",
        "LossScale.UnscaleKernel",
        "Metrics.TopKHitsKernel", "Reductions.FlatPartials{V}Kernel<SumOp>", "Reductions.FlatCombine{V}Kernel<SumOp>",
        "Reductions.FlatPartials{V}Kernel<L2NormOp>", "Reductions.FlatCombine{V}Kernel<L2NormOp>", "Clip.ByNormKernel",
        "AdamUpdate.StepKernel",
    ];

    private static readonly Dictionary<string, string[]> ByLayer = new()
    {
        ["Dense"] = ["BiasAdd.ForwardKernel", "Reductions.Columns{V}Kernel<SumOp>"],
        ["ReLU"] = ["Elementwise.MapKernel<ReluOp>", "Activations.BackwardKernel<ReluOp>"],
        ["GELU"] = ["Elementwise.MapKernel<GeluOp>", "Activations.BackwardKernel<GeluOp>"],
        ["Tanh"] = ["Elementwise.MapKernel<TanhOp>", "Activations.BackwardKernel<TanhOp>"],
        ["Sigmoid"] = ["Elementwise.MapKernel<SigmoidOp>", "Activations.BackwardKernel<SigmoidOp>"],
        ["SiLU"] = ["Elementwise.MapKernel<SiluOp>", "Activations.BackwardKernel<SiluOp>"],
        ["Dropout"] = ["Dropout.MaskKernel"],
        ["Conv2d"] = ["Conv2d.", "BiasAdd.ForwardChannelsKernel", "Reductions.Rows{V}Kernel<SumOp>"],
        ["BatchNorm1d"] = ["BatchNorm."],
        ["BatchNorm2d"] = ["BatchNorm."],
        ["LayerNorm"] = ["LayerNorm."],
        ["MaxPool2d"] = ["Pooling.MaxPool2d"],
        ["AvgPool2d"] = ["Pooling.AvgPool2d"],
        ["GlobalAvgPool"] = ["Pooling.GlobalAvgPool"],
        ["Embedding"] = ["Embedding."],
    };

    /// <summary>The definitions a training step of <paramref name="model"/> uses on <paramref name="host"/>, in launch order.</summary>
    /// <param name="model">The model.</param>
    /// <param name="host">The host the step runs on (its variant picks the kernels).</param>
    /// <returns>Distinct definitions.</returns>
    public static IReadOnlyList<KernelDef> For(Layer model, KernelHost host)
    {
        string variant = host.Variant == KernelVariant.Cpu ? "Cpu" : "Gpu";
        string other = host.Variant == KernelVariant.Cpu ? "Gpu" : "Cpu";
        var patterns = new List<string>();
        Collect(model, patterns);
        patterns.AddRange(Common);
        var byName = KernelCatalog.All.GroupBy(d => d.Name).ToDictionary(g => g.Key, g => g.First());
        var result = new List<KernelDef>();
        var seen = new HashSet<KernelDef>();
        foreach (var raw in patterns)
        {
            string p = raw.Replace("{V}", variant, StringComparison.Ordinal);
            IEnumerable<KernelDef> hits = p.EndsWith('.') || !p.Contains('<') && !byName.ContainsKey(p)
                ? KernelCatalog.All.Where(d => d.Name.StartsWith(p, StringComparison.Ordinal) && !d.Name.Contains(other, StringComparison.Ordinal))
                : byName.TryGetValue(p, out var d) ? [d] : [];
            foreach (var h in hits)
            {
                if (seen.Add(h))
                    result.Add(h);
            }
        }

        return result;
    }

    private static void Collect(Layer layer, List<string> patterns)
    {
        if (ByLayer.TryGetValue(layer.GetType().Name, out var names))
            patterns.AddRange(names);
        foreach (var (_, child) in layer.Children())
            Collect(child, patterns);
    }
}
