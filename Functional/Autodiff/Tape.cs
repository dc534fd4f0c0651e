namespace IlgpuTrain.Functional;

// Reverse-mode differentiation over a recorded list of operations (a Wengert list).
//
// A training-mode forward records one TapeNode per primitive whose inputs need gradients: the
// output tensor, the inputs, and a vector-Jacobian product (VJP) closure that captures what the
// backward needs (the forward input of ReLU, the argmax of a max pool, ...). All of it lives in
// the step's arena, so nothing is freed until the step ends.
//
// Backward walks the nodes in reverse recording order, which is a reverse topological order.
// A VJP asks Backward.Into(input) for the buffer to write its contribution to: the first
// contribution to a tensor's gradient is written in place (for a parameter, straight into its
// slot of the flat gradient buffer), and a later one goes to a fresh buffer that the tape then adds
// explicitly. So VJP kernels only ever overwrite, and a value used twice gets the sum of its
// gradients.

/// <summary>One recorded operation: its output, its inputs and its vector-Jacobian product.</summary>
internal sealed class TapeNode
{
    internal TapeNode(Tape tape, int index, string op, Tensor output, Tensor[] inputs, Action<Backward>? vjp, string? path, ArrayView<float> leafGrad)
    {
        Tape = tape;
        Index = index;
        Op = op;
        Output = output;
        Inputs = inputs;
        Vjp = vjp;
        Path = path;
        LeafGrad = leafGrad;
    }

    public Tape Tape { get; }

    public int Index { get; }

    public string Op { get; }

    public Tensor Output { get; }

    public Tensor[] Inputs { get; }

    /// <summary>The VJP; null for a leaf (a parameter).</summary>
    public Action<Backward>? Vjp { get; }

    /// <summary>The parameter path of a leaf.</summary>
    public string? Path { get; }

    /// <summary>A leaf's slot in the flat gradient buffer.</summary>
    public ArrayView<float> LeafGrad { get; }

    /// <summary>The gradient of the loss with respect to <see cref="Output"/>, once some VJP wrote it.</summary>
    public ArrayView<float> Grad { get; set; }

    public bool HasGrad { get; set; }

    public bool IsLeaf => Vjp is null;
}

/// <summary>
/// The record of a training-mode forward: every differentiable primitive applied to a value that
/// needs gradients. <see cref="Autodiff.ValueAndGrad(StepScope, ParamTree, Func{Params, Tensor}, GradOptions?)"/>
/// makes one, runs the forward with it and then its backward; users rarely touch it directly.
/// </summary>
public sealed class Tape
{
    private readonly List<TapeNode> _nodes = new();
    private readonly List<TapeNode> _leaves = new();

    internal Tape(StepScope scope)
    {
        Scope = scope;
    }

    /// <summary>The step whose arena holds the recorded tensors.</summary>
    public StepScope Scope { get; }

    /// <summary>Whether operations are being recorded (between the start of the forward and the backward).</summary>
    public bool IsRecording { get; private set; } = true;

    /// <summary>Recorded operations, leaves included.</summary>
    public int Count => _nodes.Count;

    /// <summary>The recorded operation names, in order (for diagnostics).</summary>
    public IEnumerable<string> Ops => _nodes.Select(n => n.Op);

    /// <summary>Whether <paramref name="t"/> is a value this tape differentiates.</summary>
    /// <param name="t">A tensor.</param>
    /// <returns>True when t is a parameter leaf or an output of a recorded operation of this tape.</returns>
    internal bool Tracks(Tensor t) => IsRecording && t.Node is { } n && ReferenceEquals(n.Tape, this);

    internal void Leaf(Tensor value, string path, ArrayView<float> grad)
    {
        var node = new TapeNode(this, _nodes.Count, "param " + path, value, [], null, path, grad);
        _nodes.Add(node);
        _leaves.Add(node);
        value.Node = node;
    }

    internal void Record(string op, Tensor output, Tensor[] inputs, Action<Backward> vjp)
    {
        var node = new TapeNode(this, _nodes.Count, op, output, inputs, vjp, null, default);
        _nodes.Add(node);
        output.Node = node;
    }

    /// <summary>
    /// Runs the backward pass from <paramref name="loss"/> seeded with d loss = <paramref name="seed"/>,
    /// writing the gradient of every leaf the loss depends on into its slot; <see cref="WrittenLeaves"/> says which.
    /// The tape stops recording.
    /// </summary>
    /// <param name="loss">A one-element tensor recorded on this tape.</param>
    /// <param name="seed">The gradient of the objective with respect to the loss (1, or the loss scale).</param>
    internal void Backward(Tensor loss, float seed)
    {
        if (loss.Length != 1)
            throw new ArgumentException($"ValueAndGrad: the loss function returned a Tensor{loss.Shape}; it must return a single value (use F.Mean or F.Sum, or a loss with reduction Mean or Sum).", nameof(loss));
        var kernels = Scope.Device.Kernels;
        var ctx = new Backward(this);
        if (Tracks(loss))
        {
            var root = loss.Node!;
            var seedBuffer = Scope.Scratch<float>(1);
            Elementwise.Fill(kernels, seedBuffer, seed);
            root.Grad = seedBuffer;
            root.HasGrad = true;
            if (root.IsLeaf)
                ctx.Write(root, seedBuffer);

            for (int i = root.Index; i >= 0; i--)
            {
                var node = _nodes[i];
                if (!node.HasGrad || node.IsLeaf)
                    continue;
                ctx.Run(node);
            }
        }

        IsRecording = false;
    }

    /// <summary>The parameter paths whose gradient slot the backward wrote.</summary>
    /// <returns>The paths.</returns>
    internal HashSet<string> WrittenLeaves() => _leaves.Where(l => l.HasGrad).Select(l => l.Path!).ToHashSet(StringComparer.Ordinal);

    internal void StopRecording() => IsRecording = false;

    /// <summary>
    /// Zeroes the Float32 slots of <paramref name="grads"/> that the backward did not write: frozen
    /// parameters, parameters the forward never read, and those with no path to the loss. Their gradient is exactly 0, and the
    /// tree was allocated without clearing, so without this they would hold stale pool memory.
    /// </summary>
    /// <param name="grads">The gradient tree the leaves write into.</param>
    internal void ZeroUnowned(ParamTree grads)
    {
        var owned = WrittenLeaves();
        var flat = grads.Flat32;
        long start = -1, end = -1;
        foreach (var p in grads.Layout.Params)
        {
            if (p.DType != DType.Float32 || p.Length == 0)
                continue;
            if (owned.Contains(p.Path))
            {
                Flush();
                continue;
            }

            // Adjacent unowned slots merge into one memset.
            if (start >= 0 && p.Offset == end)
            {
                end += p.Length;
            }
            else
            {
                Flush();
                start = p.Offset;
                end = p.Offset + p.Length;
            }
        }

        Flush();

        void Flush()
        {
            if (start >= 0)
                flat.SubView(start, end - start).MemSetToZero(Scope.Device.Stream);
            start = -1;
        }
    }
}

/// <summary>
/// What a vector-Jacobian product sees while the tape runs backward: the gradient of the node's
/// output and, for each input that needs one, a buffer to overwrite with its contribution.
/// </summary>
public sealed class Backward
{
    private readonly Tape _tape;
    private readonly List<(TapeNode Node, ArrayView<float> Temp)> _pending = new();
    private TapeNode? _node;

    internal Backward(Tape tape)
    {
        _tape = tape;
    }

    /// <summary>The device's kernels.</summary>
    public KernelHost Kernels => _tape.Scope.Device.Kernels;

    /// <summary>The step's arena, for temporaries.</summary>
    public StepScope Scope => _tape.Scope;

    /// <summary>The forward output of the operation being differentiated.</summary>
    public Tensor Output => Node.Output;

    /// <summary>d loss / d output, with the output's length.</summary>
    public ArrayView<float> OutputGrad => Node.Grad;

    private TapeNode Node => _node ?? throw new InvalidOperationException("Backward is only valid inside a VJP.");

    /// <summary>Whether <paramref name="input"/> needs a gradient (a frozen parameter or a constant input does not).</summary>
    /// <param name="input">One of the operation's inputs.</param>
    /// <returns>True when the VJP should compute its gradient.</returns>
    public bool Needs(Tensor input) => _tape.Tracks(input);

    /// <summary>
    /// The buffer to OVERWRITE with this operation's contribution to d loss / d input (with the
    /// input's length). The first contribution lands in place; later ones are summed by the tape.
    /// </summary>
    /// <param name="input">An input for which <see cref="Needs"/> is true.</param>
    /// <returns>The buffer to write.</returns>
    public ArrayView<float> Into(Tensor input)
    {
        if (!Needs(input))
            throw new InvalidOperationException($"{Node.Op} backward: asked for the gradient of Tensor{input.Shape}, which needs none; check Needs(input) first.");
        var target = input.Node!;
        if (!target.HasGrad)
        {
            target.Grad = target.IsLeaf ? target.LeafGrad : Scope.Scratch<float>(input.Length);
            target.HasGrad = true;
            return target.Grad;
        }

        var temp = Scope.Scratch<float>(input.Length);
        _pending.Add((target, temp));
        return temp;
    }

    internal void Run(TapeNode node)
    {
        _node = node;
        node.Vjp!(this);
        _node = null;
        foreach (var (target, temp) in _pending)
            Elementwise.Add(Kernels, target.Grad, temp, target.Grad);
        _pending.Clear();
    }

    internal void Write(TapeNode leaf, ArrayView<float> grad)
    {
        Transfer.Copy(Scope.Device.Stream, grad, leaf.LeafGrad);
    }
}
