namespace IlgpuTrain.Optimizers;

/// <summary>
/// Applies an inner transformation to the parameters a <see cref="ParamMask"/> selects; the
/// updates of the others pass through unchanged (Optax's <c>masked</c>).
/// </summary>
/// <remarks>
/// <para>u_sel ← inner(g_sel)      on the selected parameters, packed into a sub-tree of their own layout</para>
/// <para>u_rest ← g_rest           unchanged, bit for bit</para>
/// <para>The inner state (moments, counts) is sized to the selected subset only. Each update copies
/// the selected gradients and parameters into the sub-tree (one device copy per contiguous
/// range of selected parameters; adjacent parameters merge into one range), runs the inner
/// transformation, and copies its updates back. When the mask selects every parameter there is
/// no copy at all.</para>
/// <para>Pass-through means the raw gradient of an unselected parameter reaches
/// <see cref="Optimizer.ApplyUpdates"/>: to train only some parameters, also zero the others
/// with <see cref="Freeze"/>, e.g. <c>Freeze.AllExcept(trainable, optimizer)</c>, which is
/// <c>new Chain(new Masked(optimizer, trainable), new Freeze(trainable.Not()))</c>.</para>
/// <para><see cref="Optimizer.Step"/> delegates to the inner transformation's <see cref="FusionPlan"/>
/// (<see cref="IFusedStep"/>, on by default; <see cref="FusionPlan.Inner"/> shows it): it gathers the
/// selected parameters and gradients, runs <see cref="Optimizer.Step"/> of the inner transformation on
/// the packed copy (for AdamW, one launch), adds the passed-through gradients to the other
/// parameters and scatters the stepped ones back. The selected parameters then equal the generic
/// path's within float rounding, as a fused step equals its chain of updates; the others are bitwise
/// θ + g. A transformation chained after Masked needs its updates, so there Masked runs Update.</para>
/// </remarks>
/// <param name="Inner">The transformation for the selected parameters.</param>
/// <param name="Mask">Which parameters it sees.</param>
public sealed record Masked(IGradientTransformation Inner, ParamMask Mask) : IFusedStep
{
    /// <inheritdoc/>
    public string Name => "masked";

    /// <summary>Whether <see cref="Optimizer.Step"/> runs the inner transformation's own step on the packed copy (<see cref="FusedStep"/>); true by default. False: Update, then ApplyUpdates.</summary>
    public bool Fused { get; init; } = true;

    /// <inheritdoc/>
    public OptState Init(ParamTree parameters)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(Inner);
        ArgumentNullException.ThrowIfNull(Mask);
        var plan = MaskPlan.Of(parameters.Layout, Mask);
        if (plan.SelectsAll)
            return new MaskedState(Inner.Name, Inner.Init(parameters), plan);
        using var sub = plan.Gather(parameters);
        return new MaskedState(Inner.Name, Inner.Init(sub), plan);
    }

    /// <inheritdoc/>
    public UpdateResult Update(ParamTree grads, OptState state, ParamTree parameters, UpdateContext context)
    {
        var s = Checked(state, grads, parameters);
        string consumer = Name + ".Update";
        if (s.Plan.SelectsAll)
        {
            var (all, allState) = Inner.Update(grads, s.Inner, parameters, context);
            s.MarkConsumed(consumer);
            return new UpdateResult(all, new MaskedState(s.InnerName, allState, s.Plan));
        }

        var subGrads = s.Plan.Gather(grads);
        UpdateResult inner;
        using (var subParams = s.Plan.Gather(parameters))
        {
            try
            {
                inner = Inner.Update(subGrads, s.Inner, subParams, context);
            }
            catch
            {
                subGrads.Dispose();
                throw;
            }
        }
        using (inner.Updates)
            s.Plan.Scatter(inner.Updates, grads);
        s.MarkConsumed(consumer);
        return new UpdateResult(grads.Consume(Name), new MaskedState(s.InnerName, inner.State, s.Plan));
    }

    /// <summary>
    /// One step that delegates to the inner transformation's plan: <see cref="Optimizer.Step"/> of
    /// <see cref="Inner"/> on the packed selected parameters and gradients, θ + g on the others
    /// (Optax's pass-through), and the stepped parameters scattered back.
    /// </summary>
    /// <param name="parameters">Parameters. Consumed (the result reuses their buffer).</param>
    /// <param name="grads">Gradients. Consumed.</param>
    /// <param name="state">State. Consumed.</param>
    /// <param name="context">Extras.</param>
    /// <returns>New parameters and state.</returns>
    public (ParamTree Parameters, OptState State) FusedStep(ParamTree parameters, ParamTree grads, OptState state, UpdateContext context) =>
        Step(parameters, grads, state, context, passThrough: true);

    // The state, and gradients and parameters of the plan's layout.
    private MaskedState Checked(OptState state, ParamTree grads, ParamTree parameters)
    {
        var s = Chain.Expect<MaskedState>(state, this);
        ArgumentNullException.ThrowIfNull(grads);
        ArgumentNullException.ThrowIfNull(parameters);
        grads.Layout.RequireSame(s.Plan.Layout, Name);
        parameters.Layout.RequireSame(s.Plan.Layout, Name);
        return s;
    }

    // With passThrough false the other parameters keep their bits (a Freeze of the complement
    // follows, as in Freeze.AllExcept, and FusionPlan runs the pair as this one step).
    internal (ParamTree Parameters, OptState State) Step(ParamTree parameters, ParamTree grads, OptState state, UpdateContext context, bool passThrough)
    {
        var s = Checked(state, grads, parameters);
        string consumer = Name + ".FusedStep";
        if (s.Plan.SelectsAll)
        {
            var (all, allState) = Inner.Step(parameters, grads, s.Inner, context);
            s.MarkConsumed(consumer);
            return (all, new MaskedState(s.InnerName, allState, s.Plan));
        }

        var subParams = s.Plan.Gather(parameters);
        var subGrads = s.Plan.Gather(grads);
        ParamTree stepped;
        OptState inner;
        try
        {
            (stepped, inner) = Inner.Step(subParams, subGrads, s.Inner, context);
        }
        catch
        {
            subParams.Dispose();
            subGrads.Dispose();
            throw;
        }

        // Pass-through: θ + g everywhere, then the selected parameters are overwritten with the
        // inner step's values (their θ + g is never read).
        ParamTree result;
        if (passThrough)
        {
            using (grads)
                result = parameters.ApplyUpdates(grads);
        }
        else
        {
            grads.Dispose();
            result = parameters.Consume(consumer);
        }

        using (stepped)
            s.Plan.Scatter(stepped, result);
        s.MarkConsumed(consumer);
        return (result, new MaskedState(s.InnerName, inner, s.Plan));
    }
}

/// <summary>The state of <see cref="Masked"/>: the inner state (sized to the selected parameters) and the plan.</summary>
/// <param name="InnerName">The inner transformation's name (the child's name in paths).</param>
/// <param name="Inner">The inner state.</param>
/// <param name="Plan">The selected parameters and their ranges.</param>
public sealed record MaskedState(string InnerName, OptState Inner, MaskPlan Plan) : OptState
{
    /// <inheritdoc/>
    public override IEnumerable<(string Name, OptState State)> Children => [(InnerName, Inner)];
}

/// <summary>One contiguous run of selected elements: where it sits in the full and in the packed buffer.</summary>
/// <param name="Source">Offset in the full flat Float32 buffer.</param>
/// <param name="Target">Offset in the packed sub-tree's buffer.</param>
/// <param name="Length">Elements.</param>
public readonly record struct MaskRange(long Source, long Target, long Length);

/// <summary>
/// The Float32 parameters a mask selects from a layout: their packed sub-layout and the
/// contiguous ranges (adjacent parameters merged) that copy between the full and packed buffers.
/// </summary>
public sealed class MaskPlan
{
    private MaskPlan(ParamLayout layout, ParamLayout subLayout, MaskRange[] ranges)
    {
        Layout = layout;
        SubLayout = subLayout;
        Ranges = ranges;
        SelectsAll = subLayout.Equals(layout);
    }

    /// <summary>The full layout the plan was made for.</summary>
    public ParamLayout Layout { get; }

    /// <summary>The selected parameters, packed in layout order.</summary>
    public ParamLayout SubLayout { get; }

    /// <summary>The selected elements as contiguous ranges, in order.</summary>
    public IReadOnlyList<MaskRange> Ranges { get; }

    /// <summary>Whether the selection is the whole layout (the sub-layout equals it; no copy needed).</summary>
    public bool SelectsAll { get; }

    /// <summary>Plans the selection of <paramref name="mask"/> over <paramref name="layout"/>.</summary>
    /// <param name="layout">The full layout.</param>
    /// <param name="mask">The mask.</param>
    /// <returns>The plan.</returns>
    public static MaskPlan Of(ParamLayout layout, ParamMask mask)
    {
        ArgumentNullException.ThrowIfNull(layout);
        ArgumentNullException.ThrowIfNull(mask);
        var selected = mask.Select(layout);
        var sub = new ParamLayout(selected.Select(p => (p.Path, p.Shape, DType.Float32)));
        var ranges = new List<MaskRange>();
        foreach (var p in selected.Where(p => p.Length > 0))
        {
            long target = sub[p.Path].Offset;
            if (ranges.Count > 0 && ranges[^1] is var last && last.Source + last.Length == p.Offset)
                ranges[^1] = last with { Length = last.Length + p.Length };
            else
                ranges.Add(new MaskRange(p.Offset, target, p.Length));
        }
        return new MaskPlan(layout, sub, [.. ranges]);
    }

    /// <summary>A new tree of the sub-layout holding the selected elements of <paramref name="tree"/> (one device copy per range).</summary>
    /// <param name="tree">A tree of <see cref="Layout"/>; read only.</param>
    /// <returns>The packed tree (the caller disposes it).</returns>
    public ParamTree Gather(ParamTree tree)
    {
        ArgumentNullException.ThrowIfNull(tree);
        tree.Layout.RequireSame(Layout, nameof(Gather));
        var sub = ParamTree.Zeros(tree.Device, SubLayout);
        foreach (var r in Ranges)
            Transfer.Copy(tree.Device.Stream, tree.Flat32.SubView(r.Source, r.Length), sub.Flat32.SubView(r.Target, r.Length));
        return sub;
    }

    /// <summary>Copies a packed tree back into the selected elements of <paramref name="into"/> (one device copy per range).</summary>
    /// <param name="sub">A tree of <see cref="SubLayout"/>; read only.</param>
    /// <param name="into">A tree of <see cref="Layout"/>; its selected elements are overwritten, the rest untouched.</param>
    public void Scatter(ParamTree sub, ParamTree into)
    {
        ArgumentNullException.ThrowIfNull(sub);
        ArgumentNullException.ThrowIfNull(into);
        sub.Layout.RequireSame(SubLayout, nameof(Scatter));
        into.Layout.RequireSame(Layout, nameof(Scatter));
        foreach (var r in Ranges)
            Transfer.Copy(into.Device.Stream, sub.Flat32.SubView(r.Target, r.Length), into.Flat32.SubView(r.Source, r.Length));
    }

    /// <inheritdoc/>
    public override string ToString() => $"{SubLayout.Count} of {Layout.Count} parameters in {Ranges.Count} ranges";
}
