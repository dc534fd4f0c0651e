namespace IlgpuTrain.Layers;

/// <summary>
/// Multi-head self-attention over a sequence, torch.nn.MultiheadAttention with batch_first and its state_dict names:
/// x (N, T, E) → out_proj(concat over heads of softmax(q kᵀ / √(E/H)) v), q, k, v the heads of x's projections.
/// </summary>
/// <remarks>
/// <para>Packed projections (PyTorch's default): <c>in_proj_weight</c> (3E, E) and <c>in_proj_bias</c> (3E), the q, k
/// and v rows in that order. Separate ones: <c>q_proj_weight</c>, <c>k_proj_weight</c>, <c>v_proj_weight</c> (E, E),
/// with <c>in_proj_bias</c> (3E) still packed, as PyTorch names them. Then <c>out_proj.weight</c> (E, E) and
/// <c>out_proj.bias</c> (E).</para>
/// <para>Initialization as PyTorch's _reset_parameters: the projection weights Xavier-uniform, in_proj_bias and
/// out_proj.bias 0, out_proj.weight as a Linear's.</para>
/// <para>The attention is one fused op (<see cref="F.ScaledDotProductAttention"/>: online softmax, memory linear in
/// T); <see cref="Causal"/> masks future positions (a decoder's self-attention, is_causal); <see cref="Dropout"/>
/// drops attention weights in training.</para>
/// </remarks>
/// <param name="EmbedDim">E, the model width; a multiple of <paramref name="NumHeads"/>.</param>
/// <param name="NumHeads">H, the number of heads.</param>
/// <param name="Dropout">Dropout on the attention weights in training.</param>
/// <param name="Bias">Whether the projections have biases.</param>
/// <param name="Causal">Position i attends to positions j ≤ i only.</param>
/// <param name="PackedProjections">One in_proj_weight (true) or q/k/v_proj_weight (false).</param>
public sealed record MultiheadAttention(int EmbedDim, int NumHeads, float Dropout = 0f, bool Bias = true, bool Causal = false, bool PackedProjections = true) : Layer
{
    /// <summary>The output projection's name.</summary>
    public const string OutProj = "out_proj";

    private Dense OutProjection => new(EmbedDim, Bias, WeightInit.Default);

    /// <inheritdoc/>
    public override string Describe() =>
        $"MultiheadAttention({EmbedDim}, heads {NumHeads}{(Causal ? ", causal" : string.Empty)}{(Dropout > 0 ? $", dropout {Dropout}" : string.Empty)}{(Bias ? string.Empty : ", no bias")}{(PackedProjections ? string.Empty : ", separate q/k/v")})";

    /// <inheritdoc/>
    public override IReadOnlyList<ParamSpec> Parameters(Shape input)
    {
        _ = OutputShape(input);
        int e = EmbedDim;
        var xavier = Initializer.XavierUniform(new Fans(e, e * (PackedProjections ? 3 : 1)));
        var specs = new List<ParamSpec>();
        if (PackedProjections)
            specs.Add(new ParamSpec("in_proj_weight", new Shape(3 * e, e), xavier));
        else
            specs.AddRange(new[] { "q_proj_weight", "k_proj_weight", "v_proj_weight" }.Select(n => new ParamSpec(n, new Shape(e, e), Initializer.XavierUniform(new Fans(e, e)))));
        if (Bias)
            specs.Add(new ParamSpec("in_proj_bias", new Shape(3 * e), Initializer.Zeros));
        return specs;
    }

    /// <inheritdoc/>
    public override IEnumerable<(string Name, Layer Layer)> Children() => [(OutProj, OutProjection)];

    /// <inheritdoc/>
    public override Shape OutputShape(Shape input)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (EmbedDim < 1 || NumHeads < 1 || EmbedDim % NumHeads != 0)
            throw ShapeError(input, $"an embedding width divisible by the number of heads, but EmbedDim is {EmbedDim} and NumHeads {NumHeads}");
        if (!(Dropout >= 0 && Dropout < 1))
            throw new ArgumentOutOfRangeException(nameof(Dropout), Dropout, "MultiheadAttention: the dropout probability must be in [0, 1).");
        if (input.Rank != 2 || input[1] != EmbedDim)
            throw ShapeError(input, $"a sequence (T, {EmbedDim})");
        return input;
    }

    /// <inheritdoc/>
    public override Tensor Forward(LayerContext ctx, Tensor x)
    {
        ArgumentNullException.ThrowIfNull(ctx);
        ArgumentNullException.ThrowIfNull(x);
        int n = x.Shape[0], t = x.Shape[1], e = EmbedDim, h = NumHeads, d = e / h;
        Tensor? bias = Bias ? ctx.Param("in_proj_bias") : null;
        Tensor q, k, v;
        if (PackedProjections)
        {
            var qkv = F.Linear(x, ctx.Param("in_proj_weight"), bias);
            (q, k, v) = (F.Slice(qkv, 2, 0, e), F.Slice(qkv, 2, e, e), F.Slice(qkv, 2, 2 * e, e));
        }
        else
        {
            Tensor? B(int i) => bias is null ? null : F.Slice(bias, 0, i * e, e);
            (q, k, v) = (F.Linear(x, ctx.Param("q_proj_weight"), B(0)), F.Linear(x, ctx.Param("k_proj_weight"), B(1)), F.Linear(x, ctx.Param("v_proj_weight"), B(2)));
        }

        Tensor Heads(Tensor z) => F.Permute(F.Reshape(z, n, t, h, d), 0, 2, 1, 3);
        var o = F.ScaledDotProductAttention(Heads(q), Heads(k), Heads(v), dropoutP: Dropout, causal: Causal, mode: ctx.Mode, rng: ctx.Rng);
        var merged = F.Reshape(F.Permute(o, 0, 2, 1, 3), n, t, e);
        return ctx.RunChild(OutProjection, OutProj, merged, 0);
    }
}

/// <summary>
/// Adds a position's embedding to each token's features: x (N, T, D) + P[0..T). Learned (GPT's wpe): a parameter
/// <c>weight</c> (MaxLength, D) drawn from N(0, 0.02²) as GPT-2 and nanoGPT draw it; or fixed sinusoids (Vaswani et
/// al.): P[p, 2i] = sin(p / 10000^(2i/D)), P[p, 2i+1] = cos(p / 10000^(2i/D)), no parameter.
/// </summary>
/// <param name="MaxLength">The longest sequence it takes.</param>
/// <param name="Dim">D, the feature width.</param>
/// <param name="Learned">A learned table (true) or sinusoids (false).</param>
public sealed record PositionalEmbedding(int MaxLength, int Dim, bool Learned = true) : Layer
{
    /// <inheritdoc/>
    public override string Describe() => $"PositionalEmbedding({MaxLength}, {Dim}, {(Learned ? "learned" : "sinusoidal")})";

    /// <inheritdoc/>
    public override IReadOnlyList<ParamSpec> Parameters(Shape input)
    {
        _ = OutputShape(input);
        return Learned ? [new ParamSpec("weight", new Shape(MaxLength, Dim), Initializer.Normal(0.02))] : [];
    }

    /// <inheritdoc/>
    public override Shape OutputShape(Shape input)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (MaxLength < 1 || Dim < 1)
            throw ShapeError(input, $"a positive length and width, but MaxLength is {MaxLength} and Dim {Dim}");
        if (input.Rank != 2 || input[1] != Dim || input[0] > MaxLength)
            throw ShapeError(input, $"a sequence (T, {Dim}) of at most {MaxLength} positions");
        return input;
    }

    /// <summary>The sinusoid table P (length, dim), row-major, computed in float64.</summary>
    /// <param name="length">Positions.</param>
    /// <param name="dim">Features.</param>
    /// <returns>length * dim floats.</returns>
    public static float[] Sinusoids(int length, int dim)
    {
        var p = new float[length * dim];
        for (int pos = 0; pos < length; pos++)
        {
            for (int i = 0; i < dim; i++)
            {
                double angle = pos / Math.Pow(10000, 2 * (i / 2) / (double)dim);
                p[(pos * dim) + i] = (float)(i % 2 == 0 ? Math.Sin(angle) : Math.Cos(angle));
            }
        }

        return p;
    }

    /// <inheritdoc/>
    public override Tensor Forward(LayerContext ctx, Tensor x)
    {
        ArgumentNullException.ThrowIfNull(ctx);
        ArgumentNullException.ThrowIfNull(x);
        int n = x.Shape[0], t = x.Shape[1];
        var table = Learned
            ? F.Reshape(F.Slice(ctx.Param("weight"), 0, 0, t), t * Dim)
            : (x.Scope ?? throw new InvalidOperationException("PositionalEmbedding: the input lives outside a step; run the layer inside a StepScope.")).Upload(Sinusoids(t, Dim), new Shape(t * Dim));
        return F.Reshape(F.BiasAdd(F.Reshape(x, n, t * Dim), table), n, t, Dim);
    }
}

/// <summary>The feed-forward activation of a <see cref="TransformerBlock"/>.</summary>
public enum FeedForwardActivation
{
    /// <summary>ReLU, nn.TransformerEncoderLayer's default.</summary>
    Relu,

    /// <summary>GELU (exact, erf), GPT's and BERT's.</summary>
    Gelu,
}

/// <summary>
/// A Transformer block with torch.nn.TransformerEncoderLayer's (batch_first) state_dict names: <c>self_attn.*</c>
/// (<see cref="MultiheadAttention"/>), <c>linear1</c> (D → FF), <c>linear2</c> (FF → D), <c>norm1</c>, <c>norm2</c>.
/// Post-norm (PyTorch's default, norm_first false): x = norm1(x + drop(attn(x))); x = norm2(x + drop(ff(x))).
/// Pre-norm (norm_first true, GPT-2's): x = x + drop(attn(norm1(x))); x = x + drop(ff(norm2(x))).
/// ff(x) = linear2(drop(act(linear1(x)))). With <see cref="Causal"/> it is a decoder-only (GPT) block.
/// </summary>
/// <param name="Dim">D, the model width.</param>
/// <param name="Heads">Attention heads (D divisible by them).</param>
/// <param name="FeedForward">The hidden width of the feed-forward part (PyTorch's dim_feedforward; 4 D in GPT).</param>
/// <param name="Dropout">Dropout on the attention weights and after the attention, inside and after the feed-forward part.</param>
/// <param name="NormFirst">Pre-norm (true) or post-norm (false).</param>
/// <param name="Causal">Masks future positions.</param>
/// <param name="Activation">ReLU or GELU.</param>
/// <param name="Eps">LayerNorm's epsilon.</param>
public sealed record TransformerBlock(int Dim, int Heads, int FeedForward, float Dropout = 0.1f, bool NormFirst = true, bool Causal = false, FeedForwardActivation Activation = FeedForwardActivation.Gelu, float Eps = 1e-5f) : Layer
{
    private MultiheadAttention Attention => new(Dim, Heads, Dropout, Causal: Causal);

    private Dense Linear1 => new(FeedForward);

    private Dense Linear2 => new(Dim);

    private LayerNorm Norm => new(new Shape(Dim), Eps);

    /// <inheritdoc/>
    public override string Describe() =>
        $"TransformerBlock({Dim}, heads {Heads}, ff {FeedForward}, {(NormFirst ? "pre-norm" : "post-norm")}{(Causal ? ", causal" : string.Empty)}, {Activation.ToString().ToLowerInvariant()}, dropout {Dropout})";

    /// <inheritdoc/>
    public override IEnumerable<(string Name, Layer Layer)> Children() =>
        [("self_attn", Attention), ("linear1", Linear1), ("linear2", Linear2), ("norm1", Norm), ("norm2", Norm)];

    /// <inheritdoc/>
    public override IReadOnlyList<Shape> ChildInputShapes(Shape input)
    {
        ArgumentNullException.ThrowIfNull(input);
        return [input, input, new Shape(input[0], FeedForward), input, input];
    }

    /// <inheritdoc/>
    public override Shape OutputShape(Shape input)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (FeedForward < 1)
            throw ShapeError(input, $"a positive feed-forward width, but FeedForward is {FeedForward}");
        return Attention.OutputShape(input);
    }

    /// <inheritdoc/>
    public override Tensor Forward(LayerContext ctx, Tensor x)
    {
        ArgumentNullException.ThrowIfNull(ctx);
        Tensor Drop(Tensor z, uint salt) => Dropout > 0 ? F.Dropout(z, Dropout, ctx.Mode, ctx.Rng.Fold(salt)) : z;
        Tensor Attn(Tensor z) => Drop(ctx.RunChild(Attention, "self_attn", z, 0), 1);
        Tensor Ff(Tensor z)
        {
            var hidden = ctx.RunChild(Linear1, "linear1", z, 1);
            hidden = Activation == FeedForwardActivation.Gelu ? F.Gelu(hidden) : F.Relu(hidden);
            return Drop(ctx.RunChild(Linear2, "linear2", Drop(hidden, 2), 2), 3);
        }

        Tensor Norm1(Tensor z) => ctx.RunChild(Norm, "norm1", z, 3);
        Tensor Norm2(Tensor z) => ctx.RunChild(Norm, "norm2", z, 4);
        if (NormFirst)
        {
            x = F.Add(x, Attn(Norm1(x)));
            return F.Add(x, Ff(Norm2(x)));
        }

        x = Norm1(F.Add(x, Attn(x)));
        return Norm2(F.Add(x, Ff(x)));
    }
}

/// <summary>
/// A decoder-only (GPT) language model over token ids: token embedding <c>tok_emb</c> (V, D; N(0, 0.02²) as GPT-2),
/// positions <c>pos_emb</c> (<see cref="PositionalEmbedding"/>), dropout, <see cref="Layers"/> causal
/// <see cref="TransformerBlock"/>s <c>blocks.0</c>, ..., a final LayerNorm <c>norm</c> (pre-norm blocks), and the
/// output head: with <see cref="TieWeights"/> the logits are h · tok_emb.weightᵀ (Press and Wolf's weight tying:
/// one matrix, its gradient the sum of both uses), otherwise a Dense <c>head</c> without bias.
/// Input (T) float or Int32 token ids, T at most <see cref="Context"/>; output (T, V) logits.
/// </summary>
/// <param name="Vocab">V, the vocabulary size.</param>
/// <param name="Context">The longest sequence (the block size).</param>
/// <param name="Dim">D, the model width.</param>
/// <param name="Heads">Attention heads.</param>
/// <param name="Layers">Transformer blocks.</param>
/// <param name="FeedForward">The blocks' feed-forward width (4 D in GPT).</param>
/// <param name="Dropout">Dropout after the embeddings and in the blocks.</param>
/// <param name="TieWeights">Share the token embedding with the output head.</param>
/// <param name="LearnedPositions">Learned (true) or sinusoidal (false) positions.</param>
/// <param name="NormFirst">Pre-norm blocks with a final LayerNorm (GPT-2), or post-norm blocks.</param>
public sealed record TransformerLM(int Vocab, int Context, int Dim, int Heads, int Layers, int FeedForward, float Dropout = 0.1f, bool TieWeights = true, bool LearnedPositions = true, bool NormFirst = true) : Layer
{
    private Embedding TokEmb => new(Vocab, Dim) { InitStd = 0.02 };

    private PositionalEmbedding PosEmb => new(Context, Dim, LearnedPositions);

    private NamedSequential Blocks => new([.. Enumerable.Range(0, Layers).Select(i => (i.ToString(System.Globalization.CultureInfo.InvariantCulture), (Layer)new TransformerBlock(Dim, Heads, FeedForward, Dropout, NormFirst, Causal: true)))]);

    private LayerNorm Norm => new(new Shape(Dim));

    private Dense Head => new(Vocab, UseBias: false);

    /// <inheritdoc/>
    public override string Describe() =>
        $"TransformerLM(vocab {Vocab}, context {Context}, dim {Dim}, heads {Heads}, layers {Layers}, ff {FeedForward}, dropout {Dropout}{(TieWeights ? ", tied" : string.Empty)}{(LearnedPositions ? string.Empty : ", sinusoidal")}{(NormFirst ? string.Empty : ", post-norm")})";

    /// <inheritdoc/>
    public override IEnumerable<(string Name, Layer Layer)> Children()
    {
        yield return ("tok_emb", TokEmb);
        yield return ("pos_emb", PosEmb);
        yield return ("blocks", Blocks);
        if (NormFirst)
            yield return ("norm", Norm);
        if (!TieWeights)
            yield return ("head", Head);
    }

    /// <inheritdoc/>
    public override IReadOnlyList<Shape> ChildInputShapes(Shape input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var h = new Shape(input[0], Dim);
        return [input, .. Children().Skip(1).Select(_ => h)];
    }

    /// <inheritdoc/>
    public override Shape OutputShape(Shape input)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (Vocab < 1 || Layers < 0)
            throw ShapeError(input, $"a vocabulary of at least 1 and 0 or more layers, but Vocab is {Vocab} and Layers {Layers}");
        if (input.Rank != 1 || input[0] > Context)
            throw ShapeError(input, $"(T) token ids with T at most the context {Context}");
        var h = new Shape(input[0], Dim);
        _ = PosEmb.OutputShape(h);
        if (Layers > 0)
            _ = Blocks.OutputShape(h);
        return new Shape(input[0], Vocab);
    }

    /// <inheritdoc/>
    public override Tensor Forward(LayerContext ctx, Tensor x)
    {
        ArgumentNullException.ThrowIfNull(ctx);
        var h = ctx.RunChild(TokEmb, "tok_emb", x, 0);
        h = ctx.RunChild(PosEmb, "pos_emb", h, 1);
        if (Dropout > 0)
            h = F.Dropout(h, Dropout, ctx.Mode, ctx.Rng.Fold(5));
        if (Layers > 0)
            h = ctx.RunChild(Blocks, "blocks", h, 2);
        if (NormFirst)
            h = ctx.RunChild(Norm, "norm", h, 3);
        return TieWeights ? F.Linear(h, ctx.Param("tok_emb.weight")) : ctx.RunChild(Head, "head", h, 4);
    }
}
