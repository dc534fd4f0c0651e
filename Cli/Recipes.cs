using IlgpuTrain.Optimizers;

namespace IlgpuTrain.Cli;

/// <summary>Builds the optimizer chain of a run from its configuration.</summary>
internal static class Recipes
{
    /// <summary>
    /// The optimizer: [ClipByGlobalNorm] then SGD / momentum / Nesterov / Adam / AdamW with the
    /// schedule over <paramref name="totalUpdates"/>, wrapped in MultiSteps for accumulation. Under
    /// one-cycle, momentum (SGD) or beta1 (Adam) cycles between 0.95 and 0.85, as PyTorch's
    /// OneCycleLR with cycle_momentum does.
    /// </summary>
    public static IGradientTransformation Optimizer(TrainConfig c, long totalUpdates)
    {
        int total = (int)Math.Clamp(totalUpdates, 1, int.MaxValue);
        int warmup = Math.Min(c.WarmupSteps > 0 ? c.WarmupSteps : Math.Max(1, total / 20), total);
        Schedule lr = c.Schedule switch
        {
            "onecycle" => new OneCycleLR(c.LearningRate, total),
            "cosine" => new CosineAnnealingLR(c.LearningRate, total),
            "step" => new StepLR(c.LearningRate, Math.Max(1, total / 3)),
            "constant" or "plateau" => new Constant(c.LearningRate),
            "warmup-cosine" => new WarmupPlateauDecay(c.LearningRate, warmup, 0, Math.Max(1, total - warmup)),
            "wsd" => new WarmupPlateauDecay(c.LearningRate, warmup, (total - warmup) * 7 / 10, Math.Max(1, total - warmup - ((total - warmup) * 7 / 10))),
            _ => throw new ArgumentException($"Unknown schedule {c.Schedule}."),
        };
        Schedule? cycled = lr is OneCycleLR one ? one.Momentum() : null;
        IGradientTransformation core = c.Optimizer switch
        {
            "sgd" => new Sgd(lr, weightDecay: c.WeightDecay),
            "momentum" => new Sgd(lr, momentum: cycled ?? c.Momentum, weightDecay: c.WeightDecay),
            "nesterov" => new Sgd(lr, momentum: cycled ?? c.Momentum, weightDecay: c.WeightDecay, nesterov: true),
            "adam" => new Adam(lr, beta1: cycled, weightDecay: c.WeightDecay),
            "adamw" => new AdamW(lr, beta1: cycled, weightDecay: c.WeightDecay),
            _ => throw new ArgumentException($"Unknown optimizer {c.Optimizer}."),
        };
        // plateau: PyTorch's ReduceLROnPlateau on the validation loss (factor 0.1, patience 2 epochs,
        // shorter than PyTorch's 10 to act within a short run), after the optimizer's own scaling.
        var steps = new List<IGradientTransformation>();
        if (c.Clip > 0)
            steps.Add(new ClipByGlobalNorm(c.Clip));
        steps.Add(core);
        if (c.Schedule == "plateau")
            steps.Add(ReduceOnPlateau.ForLearningRate(c.LearningRate, patience: 2));
        var chain = steps.Count == 1 ? core : new Chain([.. steps]);
        return c.Accumulate > 1 ? new MultiSteps(chain, c.Accumulate) : chain;
    }

    /// <summary>A one-line description of the optimizer, for logs and checkpoints.</summary>
    public static string Describe(TrainConfig c) =>
        $"{(c.Clip > 0 ? $"clip {c.Clip:G3} -> " : string.Empty)}{c.Optimizer} (lr {c.LearningRate:G3}, {c.Schedule}, weight decay {c.WeightDecay:G3}{(c.Optimizer is "momentum" or "nesterov" ? $", momentum {c.Momentum:G3}" : string.Empty)}){(c.Accumulate > 1 ? $", accumulating {c.Accumulate} batches" : string.Empty)}";
}
