namespace IlgpuTrain.Functional;

public static partial class F
{
    /// <summary>
    /// A differentiable op of your own: runs <paramref name="forward"/> and, when the step is
    /// recording a tape and some input needs a gradient, records <paramref name="vjp"/> as the op's
    /// vector-Jacobian product. The forward may launch your own ILGPU kernels (load them with
    /// <c>step.Device.Kernels.Load(def)</c> from a <see cref="KernelDef"/>) or compose F.* ops.
    /// </summary>
    /// <remarks>
    /// The contract, which every built-in op follows too:
    /// <list type="bullet">
    /// <item><paramref name="inputs"/> lists every tensor the VJP differentiates (a tensor the forward
    /// reads but the VJP never differentiates, such as class labels, may be left out; nulls are
    /// skipped). They all belong to one step, which <paramref name="forward"/> receives.</item>
    /// <item><paramref name="forward"/> returns a NEW tensor of that step (<c>step.Allocate</c>, or the
    /// result of F.* ops), never an input, and does not modify its inputs. F.* ops inside it are
    /// not recorded: this op's VJP stands for all of them.</item>
    /// <item><paramref name="vjp"/> runs at most once, during the backward, after the VJPs of every op
    /// that reads this op's output. For each input x with <c>g.Needs(x)</c> it either overwrites
    /// every element of <c>g.Into(x)</c> with (dy/dx)^T dy, reading <c>g.OutputGrad</c> (a kernel),
    /// or passes that tensor to <c>g.Accumulate(x, dx)</c>, computing it from
    /// <c>g.OutputGradTensor</c> (F.* ops). The tape sums the contributions of every op that reads x.
    /// An input whose gradient the VJP does not provide gets no contribution from this op.</item>
    /// <item>The VJP may read any tensor it captured (forward inputs, the output, saved
    /// intermediates): tensors of the step live until the step ends. Nothing is recorded while it runs.</item>
    /// <item>In evaluation and inference (no tape), or when no input needs a gradient, only the forward
    /// runs and the VJP is dropped.</item>
    /// </list>
    /// Check a new op with <see cref="GradientCheck.Run"/> against a float64 reference.
    /// </remarks>
    /// <example>
    /// y = x^2 composed of F.* ops, with dx = 2 x dy:
    /// <code>
    /// Tensor Square(Tensor x) => F.Custom("Square", [x], step => F.Mul(x, x), g =>
    ///     g.Accumulate(x, F.Scale(F.Mul(x, g.OutputGradTensor), 2f)));
    /// </code>
    /// </example>
    /// <param name="name">The op's name, for the tape's diagnostics and error messages.</param>
    /// <param name="inputs">The tensors the op differentiates; at least one, all of one step.</param>
    /// <param name="forward">Computes the output from the step the inputs belong to.</param>
    /// <param name="vjp">The backward (see the contract above).</param>
    /// <returns>The forward's output, recorded on the tape when some input needs a gradient.</returns>
    /// <exception cref="ArgumentException">No inputs, inputs of different steps or of none, or a forward that returns an input or a tensor of another step.</exception>
    /// <exception cref="ConsumedValueException">An input was consumed.</exception>
    public static Tensor Custom(string name, IReadOnlyList<Tensor?> inputs, Func<StepScope, Tensor> forward, Action<Backward> vjp)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(inputs);
        ArgumentNullException.ThrowIfNull(forward);
        ArgumentNullException.ThrowIfNull(vjp);
        var operands = inputs.Where(t => t is not null).Select(t => t!).ToArray();
        if (operands.Length == 0)
            throw new ArgumentException($"F.Custom({name}): no inputs. List the tensors the op differentiates; an op with no differentiable input is a plain function and needs no F.Custom.", nameof(inputs));
        for (int i = 0; i < operands.Length; i++)
            operands[i].ThrowIfConsumed($"F.Custom({name}): input {i}");
        var scope = ScopeOf($"F.Custom({name})", operands);

        bool record = Recording(scope, operands);
        Tensor? y;
        if (record)
        {
            using (scope.Tape!.Suspend())
                y = forward(scope);
        }
        else
        {
            y = forward(scope);
        }

        if (y is null)
            throw new InvalidOperationException($"F.Custom({name}): the forward returned null; it must return the op's output.");
        y.ThrowIfConsumed($"F.Custom({name}): the forward's output");
        if (!ReferenceEquals(y.Scope, scope))
            throw new ArgumentException($"F.Custom({name}): the forward returned a Tensor{y.Shape} of {(y.Scope is null ? "no step" : "another step")}; allocate the output with step.Allocate(...) on the step the forward receives.", nameof(forward));
        if (Array.IndexOf(operands, y) >= 0 || (record && scope.Tape!.Tracks(y)))
            throw new ArgumentException($"F.Custom({name}): the forward returned a tensor that is already on the tape (one of its inputs?); return a new tensor: copy it (F.Scale(x, 1f)) if the op is the identity.", nameof(forward));

        if (record)
            scope.Tape!.Record(name, y, operands, vjp);
        return y;
    }
}
