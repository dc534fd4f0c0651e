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

    /// <summary><see cref="Grad"/> as a tensor of the step with the output's shape (for a node that is not a leaf).</summary>
    public Tensor? GradTensor { get; set; }

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
    private int _suspended;

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

    /// <summary>
    /// Whether an op run now records its VJP: the tape is recording and not suspended (a custom op's
    /// forward, whose inner ops its own VJP replaces, and every VJP during the backward run suspended).
    /// </summary>
    internal bool Records => IsRecording && _suspended == 0;

    /// <summary>Suspends recording until the returned scope is disposed (nests).</summary>
    /// <returns>The scope that resumes recording.</returns>
    internal Suspension Suspend()
    {
        _suspended++;
        return new Suspension(this);
    }

    internal void Leaf(Tensor value, string path, ArrayView<float> grad)
    {
        var node = new TapeNode(this, _nodes.Count, "param " + path, value, [], null, path, grad);
        _nodes.Add(node);
        _leaves.Add(node);
        value.Node = node;
    }

    /// <summary>Makes <paramref name="value"/> a leaf whose gradient lands in <paramref name="grad"/>: an input tensor differentiated by Autodiff.</summary>
    /// <param name="value">The input.</param>
    /// <param name="index">Its position in the caller's list, for diagnostics.</param>
    /// <param name="grad">Where its gradient goes.</param>
    /// <returns>The leaf; <see cref="TapeNode.HasGrad"/> says whether the backward wrote it.</returns>
    internal TapeNode InputLeaf(Tensor value, int index, ArrayView<float> grad)
    {
        var node = new TapeNode(this, _nodes.Count, $"inputs[{index}]", value, [], null, null, grad);
        _nodes.Add(node);
        value.Node = node;
        return node;
    }

    internal void Record(string op, Tensor output, Tensor[] inputs, Action<Backward> vjp)
    {
        var node = new TapeNode(this, _nodes.Count, op, output, inputs, vjp, null, default);
        _nodes.Add(node);
        output.Node = node;
        Scope.Profile?.Forward(op, Scope.Device);
    }

    /// <summary>
    /// Runs the backward pass from <paramref name="loss"/> seeded with d loss = <paramref name="seed"/>,
    /// writing the gradient of every leaf the loss depends on into its slot; <see cref="WrittenLeaves"/> says which.
    /// The tape stops recording.
    /// </summary>
    /// <param name="loss">A one-element tensor recorded on this tape.</param>
    /// <param name="seed">The gradient of the objective with respect to the loss (1, or the loss scale).</param>
    /// <param name="grads">The gradient tree the parameter leaves write into (for <paramref name="ready"/>), or null.</param>
    /// <param name="ready">Told when each parameter's gradient is final, or null.</param>
    internal void Backward(Tensor loss, float seed, ParamTree? grads = null, IGradientReadyObserver? ready = null)
    {
        if (loss.Length != 1)
            throw new ArgumentException($"ValueAndGrad: the loss function returned a Tensor{loss.Shape}; it must return a single value (use F.Mean or F.Sum, or a loss with reduction Mean or Sum), or use Autodiff.Vjp with a seed tensor of the output's shape.", nameof(loss));
        Run(loss, () =>
        {
            var seedTensor = Scope.Allocate(loss.Shape);
            Elementwise.Fill(Scope.Device.Kernels, seedTensor.View<float>(), seed);
            return seedTensor;
        }, grads, ready);
    }

    /// <summary>
    /// Runs the backward pass from <paramref name="output"/> seeded with d objective / d output =
    /// <paramref name="seed"/> (a vector-Jacobian product). The tape stops recording.
    /// </summary>
    /// <param name="output">A tensor recorded on this tape (or not: then nothing depends on a leaf).</param>
    /// <param name="seed">A Float32 tensor of the step with the output's length; only read.</param>
    /// <param name="grads">The gradient tree the parameter leaves write into (for <paramref name="ready"/>), or null.</param>
    /// <param name="ready">Told when each parameter's gradient is final, or null.</param>
    internal void Backward(Tensor output, Tensor seed, ParamTree? grads = null, IGradientReadyObserver? ready = null) => Run(output, () => seed, grads, ready);

    private void Run(Tensor output, Func<Tensor> seed, ParamTree? grads, IGradientReadyObserver? ready)
    {
        var ctx = new Backward(this);
        var readiness = grads is null || ready is null ? null : new Readiness(this, grads, ready, Tracks(output) ? output.Node!.Index : -1);
        if (Tracks(output))
        {
            var root = output.Node!;
            var seedTensor = seed();
            root.GradTensor = seedTensor;
            root.Grad = seedTensor.View<float>();
            root.HasGrad = true;
            if (root.IsLeaf)
                ctx.Write(root, root.Grad);
            readiness?.Before();

            // A VJP built from F.* ops must not record: nothing differentiates the backward itself.
            using (Suspend())
            {
                for (int i = root.Index; i >= 0; i--)
                {
                    var node = _nodes[i];
                    if (node.HasGrad && !node.IsLeaf)
                    {
                        if (Scope.Profile is { } profile)
                            profile.Backward(node.Op, Scope.Device, () => ctx.Run(node));
                        else
                            ctx.Run(node);
                    }

                    readiness?.After(i);
                }
            }
        }
        else
        {
            readiness?.Before();
        }

        IsRecording = false;
    }

    /// <summary>The parameter paths whose gradient slot the backward wrote.</summary>
    /// <returns>The paths.</returns>
    internal HashSet<string> WrittenLeaves() => _leaves.Where(l => l.HasGrad).Select(l => l.Path!).ToHashSet(StringComparer.Ordinal);

    internal void StopRecording() => IsRecording = false;

    /// <summary>
    /// When each Float32 parameter's gradient slot is final during a backward from node
    /// <c>root</c>: after the earliest node at or below the root that reads the parameter's leaf
    /// (the last one of the reverse sweep that can write it); at once for a parameter with no such
    /// node or no leaf (frozen, never read). A slot that no node wrote is zero-filled before it is reported.
    /// </summary>
    private sealed class Readiness
    {
        private readonly ParamTree _grads;
        private readonly IGradientReadyObserver _observer;
        private readonly List<(ParamInfo Param, TapeNode? Leaf)> _now = new();
        private readonly Dictionary<int, List<(ParamInfo Param, TapeNode? Leaf)>> _after = new();

        public Readiness(Tape tape, ParamTree grads, IGradientReadyObserver observer, int root)
        {
            _grads = grads;
            _observer = observer;
            var leaves = new Dictionary<string, TapeNode>(StringComparer.Ordinal);
            foreach (var l in tape._leaves)
                leaves[l.Path!] = l;
            var lastWriter = new Dictionary<TapeNode, int>();
            for (int i = root; i >= 0; i--)
            {
                var node = tape._nodes[i];
                if (node.IsLeaf)
                    continue;
                foreach (var input in node.Inputs)
                {
                    if (input.Node is { IsLeaf: true, Path: not null } leaf && ReferenceEquals(leaf.Tape, tape))
                        lastWriter[leaf] = i;                                                               // the sweep goes down: the last assignment is the earliest node
                }
            }

            // Layout order from the end, as the buckets are planned (the last parameters' gradients come first).
            for (int k = grads.Layout.Params.Count - 1; k >= 0; k--)
            {
                var p = grads.Layout.Params[k];
                if (p.DType != DType.Float32 || p.Length == 0)
                    continue;
                var leaf = leaves.GetValueOrDefault(p.Path);
                if (leaf is not null && lastWriter.TryGetValue(leaf, out int at))
                {
                    if (!_after.TryGetValue(at, out var list))
                        _after[at] = list = new();
                    list.Add((p, leaf));
                }
                else
                {
                    _now.Add((p, leaf));
                }
            }
        }

        /// <summary>Reports the parameters no node of the sweep writes (after the root's own write).</summary>
        public void Before() => Report(_now);

        /// <summary>Reports the parameters whose last writer is node <paramref name="index"/> (run or skipped), then drives the observer's work.</summary>
        public void After(int index)
        {
            if (_after.TryGetValue(index, out var list))
                Report(list);
            _observer.Progress();
        }

        private void Report(List<(ParamInfo Param, TapeNode? Leaf)> list)
        {
            foreach (var (p, leaf) in list)
            {
                if (leaf is not { HasGrad: true })
                    _grads.Flat32.SubView(p.Offset, p.Length).MemSetToZero(_grads.Device.Stream);
                _observer.Ready(_grads, p);
            }
        }
    }

    /// <summary>The scope of <see cref="Suspend"/>.</summary>
    internal readonly struct Suspension : IDisposable
    {
        private readonly Tape _tape;

        internal Suspension(Tape tape)
        {
            _tape = tape;
        }

        /// <summary>Resumes recording (when no other suspension is open).</summary>
        public void Dispose() => _tape._suspended--;
    }

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
/// What a vector-Jacobian product (VJP) sees while the tape runs backward: the gradient of the
/// operation's output and, for each input that needs one, a place to put its contribution.
/// </summary>
/// <remarks>
/// A VJP of an op y = f(x1, ..., xk) receives dy = d objective / d y and, for every input xi with
/// <see cref="Needs"/> true, provides dxi = (d y / d xi)^T dy. It does so in one of two ways:
/// <list type="bullet">
/// <item>with its own kernel: it OVERWRITES <see cref="Into"/>(xi) (every element), reading <see cref="OutputGrad"/>;</item>
/// <item>with F.* ops: it computes a tensor from <see cref="OutputGradTensor"/> and hands it to <see cref="Accumulate"/>(xi, dxi).</item>
/// </list>
/// Either way the tape sums the contributions of every op that reads xi, so a VJP never adds to
/// what other ops wrote. Nothing is recorded while a VJP runs (no gradients of gradients), and the
/// tensors it reads (forward inputs and outputs it captured) live until the step ends.
/// </remarks>
public sealed class Backward
{
    private readonly Tape _tape;
    private readonly List<(TapeNode Node, ArrayView<float> Temp)> _pending = new();
    private TapeNode? _node;

    internal Backward(Tape tape)
    {
        _tape = tape;
    }

    /// <summary>The device's kernels: the cache a VJP loads its own kernels from (<see cref="KernelHost.Load{TLauncher}(KernelDef{TLauncher})"/>).</summary>
    public KernelHost Kernels => _tape.Scope.Device.Kernels;

    /// <summary>The step's arena, for temporaries.</summary>
    public StepScope Scope => _tape.Scope;

    /// <summary>The name the operation was recorded under.</summary>
    public string Op => Node.Op;

    /// <summary>The forward output of the operation being differentiated.</summary>
    public Tensor Output => Node.Output;

    /// <summary>The inputs the operation declared that need a gradient (in declaration order).</summary>
    public IReadOnlyList<Tensor> Inputs => Node.Inputs;

    /// <summary>d objective / d output, with the output's length. Read it; never write it.</summary>
    public ArrayView<float> OutputGrad => Node.Grad;

    /// <summary>
    /// d objective / d output as a Float32 tensor of the step with the output's shape, for a VJP
    /// composed of F.* ops (the same memory as <see cref="OutputGrad"/>; read it, never write it).
    /// </summary>
    public Tensor OutputGradTensor => Node.GradTensor ?? throw new InvalidOperationException($"{Node.Op} backward: the output gradient has no tensor form.");

    private TapeNode Node => _node ?? throw new InvalidOperationException("Backward is only valid inside a VJP.");

    /// <summary>Whether <paramref name="input"/> needs a gradient (a frozen parameter or a constant input does not).</summary>
    /// <param name="input">One of the operation's inputs.</param>
    /// <returns>True when the VJP should compute its gradient.</returns>
    public bool Needs(Tensor input) => _tape.Tracks(input);

    /// <summary>
    /// The buffer to OVERWRITE with this operation's contribution to d objective / d input (with the
    /// input's length). The first contribution lands in place; later ones are summed by the tape.
    /// </summary>
    /// <param name="input">One of the operation's declared inputs, for which <see cref="Needs"/> is true.</param>
    /// <returns>The buffer to write.</returns>
    /// <exception cref="InvalidOperationException">The tensor is not an input of this operation, or needs no gradient.</exception>
    public ArrayView<float> Into(Tensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var node = Node;
        if (!Needs(input))
            throw new InvalidOperationException($"{node.Op} backward: asked for the gradient of Tensor{input.Shape}, which needs none (a constant, a frozen parameter, or a value not on this tape); check Needs(input) first.");
        if (Array.IndexOf(node.Inputs, input) < 0)
            throw new InvalidOperationException($"{node.Op} backward: asked for the gradient of Tensor{input.Shape}, which is not one of the inputs the op declared ({Describe(node.Inputs)}); list every tensor the forward reads and the VJP differentiates in the op's inputs.");
        var target = input.Node!;
        if (!target.HasGrad)
        {
            if (target.IsLeaf)
            {
                target.Grad = target.LeafGrad;
            }
            else
            {
                var grad = Scope.Allocate(input.Shape);
                target.GradTensor = grad;
                target.Grad = grad.View<float>();
            }

            target.HasGrad = true;
            return target.Grad;
        }

        var temp = Scope.Scratch<float>(input.Length);
        _pending.Add((target, temp));
        return temp;
    }

    /// <summary>
    /// Adds <paramref name="contribution"/> (this operation's d objective / d input, computed with
    /// F.* ops or any kernel) to the gradient of <paramref name="input"/>. Copies; the tensor is not kept.
    /// </summary>
    /// <param name="input">One of the operation's declared inputs, for which <see cref="Needs"/> is true.</param>
    /// <param name="contribution">A Float32 tensor with the input's length.</param>
    /// <exception cref="InvalidOperationException">The tensor is not an input of this operation, or needs no gradient.</exception>
    /// <exception cref="ArgumentException">The contribution is not Float32 or has another length.</exception>
    public void Accumulate(Tensor input, Tensor contribution)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(contribution);
        if (contribution.DType != DType.Float32 || contribution.Length != input.Length)
            throw new ArgumentException($"{Node.Op} backward: the gradient contribution for the input Tensor{input.Shape} is a {contribution.DType} Tensor{contribution.Shape}; it must be Float32 with the input's {input.Length} elements.", nameof(contribution));
        Transfer.Copy(Scope.Device.Stream, contribution.View<float>(), Into(input));
    }

    internal void Run(TapeNode node)
    {
        _node = node;
        try
        {
            node.Vjp!(this);
        }
        finally
        {
            _node = null;
        }

        foreach (var (target, temp) in _pending)
            Elementwise.Add(Kernels, target.Grad, temp, target.Grad);
        _pending.Clear();
    }

    internal void Write(TapeNode leaf, ArrayView<float> grad)
    {
        Transfer.Copy(Scope.Device.Stream, grad, leaf.LeafGrad);
    }

    private static string Describe(Tensor[] inputs) =>
        inputs.Length == 0 ? "none" : string.Join(", ", inputs.Select(t => $"Tensor{t.Shape}"));
}
