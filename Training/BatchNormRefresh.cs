namespace IlgpuTrain.Training;

/// <summary>
/// Recomputes a model's BatchNorm running statistics for given weights from data, as
/// <c>torch.optim.swa_utils.update_bn</c>: averaged weights (SWA) never produced the activations
/// their running statistics were tracked on, so the statistics are measured again.
/// </summary>
/// <remarks>
/// <para>For every BatchNorm1d and BatchNorm2d: running_mean ← 0, running_var ← 1,
/// num_batches_tracked ← 0 (reset_running_stats), momentum None; then one pass over the data in
/// Train mode, without touching the weights. Momentum None is PyTorch's cumulative moving
/// average: batch k updates with factor 1/k, so after K batches</para>
/// <para>running_mean = (1/K) Σₖ mean_k,  running_var = (1/K) Σₖ var_k·m_k/(m_k − 1)  (unbiased, m_k values per channel)</para>
/// <para>and num_batches_tracked = K. Every batch weighs the same, as in PyTorch (a short last
/// batch too). Other state entries are kept. Dropout runs as in training (Train mode), with a
/// fixed stream; augmentation is not applied.</para>
/// </remarks>
public static class BatchNormRefresh
{
    // A stream of its own, apart from the trainer's dropout and augmentation purposes.
    private const uint DropoutPurpose = 7;

    /// <summary>Whether <paramref name="model"/> has a BatchNorm layer (otherwise a refresh changes nothing).</summary>
    /// <param name="model">The model.</param>
    /// <returns>True when it has one.</returns>
    public static bool Has(Layer model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return model is BatchNorm1d or BatchNorm2d || model.Children().Any(c => Has(c.Layer));
    }

    /// <summary>The model state with every BatchNorm's statistics recomputed over <paramref name="data"/> for <paramref name="parameters"/>.</summary>
    /// <param name="device">The device of the trees.</param>
    /// <param name="model">The model.</param>
    /// <param name="parameters">The weights to measure the statistics for (read, never changed).</param>
    /// <param name="state">The model state (read; its non-BatchNorm entries are kept).</param>
    /// <param name="data">The data, usually the training set; its samples must fit the model.</param>
    /// <param name="batchSize">Samples per batch (the training batch size).</param>
    /// <param name="dropLast">Drop a short last batch (as the training loader).</param>
    /// <param name="seed">The seed of the dropout masks of the pass.</param>
    /// <param name="precision">The numeric policy of the forward.</param>
    /// <returns>A new state tree, which the caller owns.</returns>
    public static ParamTree Refresh(Device device, Layer model, ParamTree parameters, ParamTree state, IDataset data, int batchSize, bool dropLast = false, ulong seed = 0, Precision precision = Precision.Float32)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(state);
        ArgumentNullException.ThrowIfNull(data);
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        var current = Reset(device, model, state);
        try
        {
            using var loader = new DataLoader(data, batchSize, shuffle: false, dropLast: dropLast, seed: seed);
            var rng = Rng.Create(seed).Fold(DropoutPurpose);
            int k = 0;
            foreach (var batch in loader.Epoch(1))
            {
                k++;
                // Momentum None: batch k enters the running statistics with weight 1/k.
                var cumulative = WithMomentum(model, 1f / k);
                using var step = device.BeginStep();
                step.Precision = precision;
                var x = step.Upload(batch.X, batch.Shape);
                var (_, next) = cumulative.Apply(Params.Bind(parameters, step), current, x, Mode.Train, rng.At((uint)k));
                if (!ReferenceEquals(next, current))
                {
                    current.Dispose();
                    current = next;
                }
            }

            return current;
        }
        catch
        {
            current.Dispose();
            throw;
        }
    }

    /// <summary>A copy of the state with every BatchNorm's running_mean 0, running_var 1 and num_batches_tracked 0.</summary>
    private static ParamTree Reset(Device device, Layer model, ParamTree state)
    {
        var snap = state.Snapshot();
        foreach (var prefix in BatchNormPrefixes(model, string.Empty))
        {
            Fill(snap, prefix + "running_mean", 0f);
            Fill(snap, prefix + "running_var", 1f);
            if (snap.Layout.Contains(prefix + "num_batches_tracked"))
            {
                var p = snap.Layout[prefix + "num_batches_tracked"];
                snap.Int32.AsSpan((int)p.Offset, (int)p.Length).Clear();
            }
        }

        return ParamTree.FromSnapshot(device, snap);

        static void Fill(ParamSnapshot s, string path, float v)
        {
            var p = s.Layout[path];
            s.Float32.AsSpan((int)p.Offset, (int)p.Length).Fill(v);
        }
    }

    // The path prefixes of the BatchNorm layers ("1.", "0.block.1."), as Layer.Init names them.
    private static IEnumerable<string> BatchNormPrefixes(Layer layer, string prefix)
    {
        if (layer is BatchNorm1d or BatchNorm2d)
            yield return prefix;
        foreach (var (name, child) in layer.Children())
        {
            foreach (var p in BatchNormPrefixes(child, prefix + name + "."))
                yield return p;
        }
    }

    // The model with every BatchNorm's momentum set; containers are rebuilt around their children.
    private static Layer WithMomentum(Layer layer, float momentum) => layer switch
    {
        BatchNorm1d b => b with { Momentum = momentum },
        BatchNorm2d b => b with { Momentum = momentum },
        Sequential s => new Sequential(s.Layers.Select(l => WithMomentum(l, momentum)).ToArray()),
        Residual r => r with { Block = WithMomentum(r.Block, momentum), Shortcut = r.Shortcut is null ? null : WithMomentum(r.Shortcut, momentum) },
        _ when layer.Children().Any(c => Has(c.Layer)) => throw new ArgumentException(
            $"BatchNormRefresh: {layer.Describe()} holds BatchNorm layers inside a container this refresh cannot rebuild (it knows Sequential and Residual); build the model from those.", nameof(layer)),
        _ => layer,
    };
}
