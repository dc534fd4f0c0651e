namespace IlgpuTrain.Functional;

/// <summary>
/// Differentiable primitives. Each takes and returns tensors of one step, runs ILGPU kernels, and
/// when its step is recording a tape and an input needs gradients, records its vector-Jacobian
/// product (VJP). Outputs are new tensors of the step; inputs are never modified.
/// </summary>
/// <remarks>
/// Shapes follow PyTorch: N batch, C channels or classes, H/W spatial, D features in, F features
/// out. Every primitive checks its shapes first and names the op, the argument and both shapes.
/// </remarks>
public static partial class F
{
    /// <summary>The step all <paramref name="tensors"/> belong to; throws when one is outside any step or they differ.</summary>
    /// <param name="op">The operation, for messages.</param>
    /// <param name="tensors">The operands.</param>
    /// <returns>Their step.</returns>
    internal static StepScope ScopeOf(string op, params ReadOnlySpan<Tensor> tensors)
    {
        StepScope? scope = null;
        foreach (var t in tensors)
        {
            ArgumentNullException.ThrowIfNull(t, op);
            var s = t.Scope ?? throw new ArgumentException($"{op}: Tensor{t.Shape} does not belong to a step. Create inputs with step.Upload(...) or bring an owned tensor in with step.Use(tensor).");
            if (scope is not null && !ReferenceEquals(scope, s))
                throw new ArgumentException($"{op}: the operands belong to different steps; every tensor of one computation must come from the same step.");
            scope = s;
        }

        return scope ?? throw new ArgumentException($"{op}: no operands.");
    }

    /// <summary>Throws unless <paramref name="t"/> holds float32.</summary>
    /// <param name="op">The operation.</param>
    /// <param name="t">The tensor.</param>
    /// <param name="name">Its argument name.</param>
    internal static void RequireFloat(string op, Tensor t, string name)
    {
        if (t.DType != DType.Float32)
            throw new ArgumentException($"{op}: {name} is a {t.DType} Tensor{t.Shape}, but this op takes Float32.", name);
    }

    /// <summary>Throws unless <paramref name="t"/> has rank <paramref name="rank"/>.</summary>
    /// <param name="op">The operation.</param>
    /// <param name="t">The tensor.</param>
    /// <param name="name">Its argument name.</param>
    /// <param name="rank">Required rank.</param>
    /// <param name="legend">The expected layout, such as "(N, C, H, W)".</param>
    internal static void RequireRank(string op, Tensor t, string name, int rank, string legend)
    {
        if (t.Shape.Rank != rank)
            throw new ArgumentException($"{op}: {name} must be {legend} (rank {rank}) but is {t.Shape} (rank {t.Shape.Rank}).", name);
    }

    /// <summary>Whether an op over <paramref name="inputs"/> must record on the tape.</summary>
    /// <param name="scope">The step.</param>
    /// <param name="inputs">The op's inputs.</param>
    /// <returns>True when the step records (and is not inside a custom op's forward or a VJP) and some input needs gradients.</returns>
    internal static bool Recording(StepScope scope, params ReadOnlySpan<Tensor?> inputs)
    {
        if (scope.Tape is not { Records: true } tape)
            return false;
        foreach (var t in inputs)
        {
            if (t is not null && tape.Tracks(t))
                return true;
        }

        return false;
    }

    /// <summary>Records <paramref name="vjp"/> for <paramref name="output"/> when the step records and an input needs gradients.</summary>
    /// <param name="op">The operation name, for diagnostics.</param>
    /// <param name="output">The op's output.</param>
    /// <param name="inputs">The inputs the VJP may write gradients for (nulls are skipped).</param>
    /// <param name="vjp">The backward.</param>
    internal static void Record(string op, Tensor output, Tensor?[] inputs, Action<Backward> vjp)
    {
        var scope = output.Scope!;
        if (!Recording(scope, inputs))
            return;
        scope.Tape!.Record(op, output, inputs.Where(t => t is not null).ToArray()!, vjp);
    }
}
