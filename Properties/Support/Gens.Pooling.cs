namespace IlgpuTrain.Properties.Support;

/// <summary>A generated pooling case: a valid geometry, a seed for its data, and the average-pool divisor mode.</summary>
/// <param name="G">The geometry (always one Pool2dGeometry.Create accepts).</param>
/// <param name="Seed">Seed for x and dy.</param>
/// <param name="CountIncludePad">The average-pool divisor mode.</param>
/// <param name="Ties">Whether x takes few distinct values (so windows hold ties), rather than spread values.</param>
public sealed record PoolCase(Pool2dGeometry G, int Seed, bool CountIncludePad, bool Ties)
{
    /// <summary>The input (N,C,H,W): integers in [-3, 3] when <see cref="Ties"/>, else uniform in [-10, 10].</summary>
    public float[] X => Ties
        ? Gens.Random(Seed, checked((int)G.InputLength), -3.5f, 3.5f).Select(v => MathF.Round(v)).ToArray()
        : Gens.Random(Seed, checked((int)G.InputLength));

    /// <summary>An upstream gradient (N,C,OH,OW) in [-2, 2].</summary>
    public float[] Dy => Gens.Random(Seed + 1, checked((int)G.OutputLength), -2f, 2f);

    /// <summary>
    /// Distinct input values: a shuffled arange scaled by 0.01, so every window has a unique
    /// maximum that stays unique under a finite-difference step (1e-5 relative).
    /// </summary>
    public float[] DistinctX
    {
        get
        {
            int n = checked((int)G.InputLength);
            var v = Enumerable.Range(0, n).Select(i => (float)((i - (n / 2)) * 0.01)).ToArray();
            new Random(Seed).Shuffle(v);
            return v;
        }
    }

    /// <inheritdoc/>
    public override string ToString() => $"{G}, seed {Seed}, countIncludePad {CountIncludePad}, ties {Ties}";
}

/// <summary>Generators for the pooling kernels.</summary>
public static partial class Gens
{
    /// <summary>Edge plane sizes: one, a prime, the GPU simulator's group size 16 plus or minus one.</summary>
    public static readonly int[] EdgePlaneSizes = [1, 2, 3, 4, 5, 7, 8, 15, 16, 17];

    /// <summary>
    /// A valid pooling case. Batch N includes 0, window sides 1 to 4, stride 1 to 3, padding up to
    /// half the window, dilation 1 or 2 when <paramref name="dilated"/>. Plane sides are edges
    /// (1, primes, 16 plus or minus one), so plane and batch totals cover 0, 1, primes and 255/256/257;
    /// when <paramref name="wide"/>, one case in ten has W = 257.
    /// </summary>
    /// <param name="dilated">Whether dilation may exceed 1 (max pooling only).</param>
    /// <param name="wide">Whether W = 257 may occur (keep it off for finite differences).</param>
    /// <param name="maxSide">Largest H or W otherwise.</param>
    /// <returns>The generator.</returns>
    public static Gen<PoolCase> Pool(bool dilated, bool wide = true, int maxSide = 17) =>
        from n in Gen.Elements(0, 1, 1, 2, 3)
        from c in Gen.Elements(1, 2, 3)
        from h in Gen.Elements(EdgePlaneSizes.Where(v => v <= maxSide).ToArray())
        from w in wide ? Gen.Frequency((9, Gen.Elements(EdgePlaneSizes)), (1, Gen.Constant(257))) : Gen.Elements(EdgePlaneSizes.Where(v => v <= maxSide).ToArray())
        from kh in Gen.Choose(1, 4)
        from kw in Gen.Choose(1, 4)
        from sh in Gen.Choose(1, 3)
        from sw in Gen.Choose(1, 3)
        from ph in Gen.Choose(0, kh / 2)
        from pw in Gen.Choose(0, kw / 2)
        from dh in dilated ? Gen.Choose(1, 2) : Gen.Constant(1)
        from dw in dilated ? Gen.Choose(1, 2) : Gen.Constant(1)
        from seed in Gen.Choose(0, 1_000_000)
        from include in Gen.Elements(true, false)
        from ties in Gen.Elements(true, false)
        where Pool2dGeometry.OutputSize(h, kh, sh, ph, dh) >= 1 && Pool2dGeometry.OutputSize(w, kw, sw, pw, dw) >= 1
        select new PoolCase(Pool2dGeometry.Create("gen", n, c, h, w, (kh, kw), (sh, sw), (ph, pw), (dh, dw)), seed, include, ties);
}
