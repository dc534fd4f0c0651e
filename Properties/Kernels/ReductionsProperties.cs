namespace IlgpuTrain.Properties.Kernels;

/// <summary>
/// Reductions: every kernel (flat in both modes, rows, columns; managed loops and kernels) equals its
/// float64 reference within a rounding bound; deterministic mode is bitwise stable; known values
/// and invariants hold without sharing code with the kernels.
/// </summary>
public class ReductionsProperties
{
    /// <summary>The reduction operators, for looping over all five.</summary>
    public enum Op
    {
        /// <summary>Σ x.</summary>
        Sum,

        /// <summary>Σ x / n.</summary>
        Mean,

        /// <summary>max x.</summary>
        Max,

        /// <summary>Σ x².</summary>
        SumOfSquares,

        /// <summary>√(Σ x²).</summary>
        L2Norm,
    }

    // Unit roundoff of float: every float operation is exact times (1 + δ) with |δ| <= U.
    private const double U = 1.0 / (1 << 24);

    private static readonly Op[] Ops = Enum.GetValues<Op>();
    private static readonly ReductionMode[] Modes = [ReductionMode.Deterministic, ReductionMode.Atomic];

    // Hosts that run the kernels with other launch shapes on the CPU accelerator, and the managed
    // loops with 8 partials (so the combination order has room to vary); cached because each
    // host compiles its kernels once.
    private static readonly Dictionary<(int Group, int Groups), KernelHost> GpuShapeHosts = [];
    private static readonly Lazy<KernelHost> Cpu8 = new(() => new KernelHost(
        Devices.Cpu.Accelerator, Devices.Cpu.Stream, Devices.Cpu.Kernels.Launch with { MaxGroups = 8, MaxReduceGroups = 8 }));

    private delegate void FlatLaunch(KernelHost host, ArrayView<float> x, ArrayView<float> result, ArrayView<float> scratch, ReductionMode mode);

    private delegate void MatrixLaunch(KernelHost host, ArrayView<float> x, int rows, int cols, ArrayView<float> result);

    private delegate void MatrixReference(ReadOnlySpan<float> x, int rows, int cols, Span<double> result);

    // ---------------------------------------------------------------- kernel == reference

    [Property(MaxTest = 40)]
    public Property Flat_reductions_equal_reference() =>
        Prop.ForAll(Gens.ReductionVector().ToArbitrary(), x =>
        {
            var failures = new List<string>();
            foreach (var d in Devices.All)
            {
                foreach (var mode in Modes)
                    CheckFlat(d.Kernels, d, x, mode, $"{Name(d)} {mode}", failures);
            }
            return Verdict(failures, $"n = {x.Length}");
        });

    [Property(MaxTest = 40)]
    public Property Row_reductions_equal_reference() =>
        Prop.ForAll(Gens.Matrix().ToArbitrary(), m =>
        {
            var failures = new List<string>();
            foreach (var d in Devices.All)
                CheckRows(d.Kernels, d, m, Name(d), failures, Ops);
            return Verdict(failures, m.ToString());
        });

    [Property(MaxTest = 40)]
    public Property Column_reductions_equal_reference() =>
        Prop.ForAll(Gens.Matrix().ToArbitrary(), m =>
        {
            var failures = new List<string>();
            foreach (var d in Devices.All)
                CheckColumns(d.Kernels, d, m, Name(d), failures, Ops);
            return Verdict(failures, m.ToString());
        });

    // The GPU trees must be right for every group size up to their shared-memory constant and
    // any number of groups; the simulator's own policy only ever uses 16 threads and 2 groups.
    [Property(MaxTest = 30)]
    public Property Gpu_variants_are_correct_for_any_group_size_and_grid() =>
        Prop.ForAll(Gens.ReduceShape.ToArbitrary(), Gens.ReductionVector().ToArbitrary(), Gens.Matrix().ToArbitrary(), (shape, x, m) =>
        {
            var d = Devices.CpuKernels;
            var host = GpuShapeHost(shape.Group, shape.Groups);
            var failures = new List<string>();
            Op[] ops = [Op.Sum, Op.Max];
            foreach (var mode in Modes)
                CheckFlat(host, d, x, mode, $"{mode}", failures, ops);
            CheckRows(host, d, m, "rows", failures, ops);
            CheckColumns(host, d, m, "columns", failures, ops);
            return Verdict(failures, $"group {shape.Group}, {shape.Groups} groups, n = {x.Length}, {m}");
        });

    // ---------------------------------------------------------------- determinism

    /// <summary>
    /// Row and column sums that meet ±∞ or NaN give what float addition gives per output: +∞ alone
    /// stays +∞, −∞ alone −∞, both or a NaN give NaN, and every other output stays finite.
    /// </summary>
    [Property(MaxTest = 25)]
    public Property Row_and_column_sums_meeting_infinities_give_what_float_addition_gives() =>
        Prop.ForAll(Gen.Choose(1, 300).ToArbitrary(), Gen.Choose(1, 70).ToArbitrary(), Gen.Choose(0, int.MaxValue).ToArbitrary(), (rows, cols, seed) =>
        {
            var r = new Random(seed);
            var data = new float[rows * cols];
            for (int i = 0; i < data.Length; i++)
                data[i] = (float)((r.NextDouble() * 2) - 1);
            float[] specials = [float.PositiveInfinity, float.NegativeInfinity, float.NaN];
            for (int k = 0; k < 3; k++)
                data[r.Next(data.Length)] = specials[r.Next(3)];

            float Expected(IEnumerable<float> line)
            {
                var v = line.ToList();
                bool nan = v.Any(float.IsNaN), pos = v.Contains(float.PositiveInfinity), neg = v.Contains(float.NegativeInfinity);
                return nan || (pos && neg) ? float.NaN : pos ? float.PositiveInfinity : neg ? float.NegativeInfinity : 0f;
            }

            bool Agrees(float got, float expected) => expected == 0f ? float.IsFinite(got) : got.Equals(expected);

            var failures = new List<string>();
            foreach (var d in Devices.All)
            {
                var sums = RunMatrix(ColumnsOf(Op.Sum), d.Kernels, d, data, rows, cols, cols);
                for (int c = 0; c < cols; c++)
                {
                    float expected = Expected(Enumerable.Range(0, rows).Select(i => data[(i * cols) + c]));
                    if (!Agrees(sums[c], expected))
                        failures.Add($"{Name(d)}: column {c} sum {sums[c]:R}, float addition gives {(expected == 0f ? "a finite value" : expected.ToString("R"))}");
                }

                var rowSums = RunMatrix(RowsOf(Op.Sum), d.Kernels, d, data, rows, cols, rows);
                for (int i = 0; i < rows; i++)
                {
                    float expected = Expected(data.Skip(i * cols).Take(cols));
                    if (!Agrees(rowSums[i], expected))
                        failures.Add($"{Name(d)}: row {i} sum {rowSums[i]:R}, float addition gives {(expected == 0f ? "a finite value" : expected.ToString("R"))}");
                }
            }

            return Verdict(failures, $"({rows}, {cols})");
        });

    private static readonly Lazy<KernelHost> Cpu1 = new(() => new KernelHost(
        Devices.Cpu.Accelerator, Devices.Cpu.Stream, Devices.Cpu.Kernels.Launch with { MaxGroups = 1 }));

    /// <summary>
    /// The managed flat reductions give the same bits on one thread as on all of them (the chains'
    /// layout depends on n and the partial count only), also where a ±∞ sends a unit through the
    /// non-finite rule, and for lengths that cut units short.
    /// </summary>
    [Property(MaxTest = 12)]
    public Property Managed_flat_reductions_give_the_same_bits_on_one_thread_and_on_all() =>
        Prop.ForAll(Gen.Choose(1, 3 << 20).ToArbitrary(), Gen.Choose(int.MinValue, int.MaxValue).ToArbitrary(), Gen.Elements(false, true).ToArbitrary(), (n, seed, special) =>
        {
            var x = Gens.MixedScale(seed, n);
            if (special)
                x[(int)((uint)seed % (uint)n)] = float.PositiveInfinity;
            var failures = new List<string>();
            using var tx = Devices.Cpu.Upload(x);
            using var scratch = Devices.Cpu.Poisoned(Reductions.ScratchLength(Devices.Cpu.Kernels, n));
            using var result = Devices.Cpu.Poisoned(1);
            foreach (var op in Ops)
            {
                var bits = new uint[2];
                foreach (var (i, host) in new[] { (0, Cpu1.Value), (1, Devices.Cpu.Kernels) })
                {
                    FlatOf(op)(host, tx.View<float>(), result.View<float>(), scratch.View<float>(), ReductionMode.Deterministic);
                    bits[i] = BitConverter.SingleToUInt32Bits(result.ToHost()[0]);
                }

                if (bits[0] != bits[1])
                    failures.Add($"{op}: one thread {BitConverter.UInt32BitsToSingle(bits[0]):R}, all {BitConverter.UInt32BitsToSingle(bits[1]):R}");
            }

            return Verdict(failures, $"n = {n}, +inf {special}");
        });

    [Property(MaxTest = 2)]
    public Property Deterministic_mode_is_bitwise_stable_over_20_runs() =>
        Prop.ForAll(Gens.LargeLength.ToArbitrary(), Gen.Choose(int.MinValue, int.MaxValue).ToArbitrary(), (n, seed) =>
        {
            var x = Gens.MixedScale(seed, n);
            var failures = new List<string>();
            // With 2 partials any order gives the same bits (float addition commutes), so the
            // 8-partial CPU host and the 7-group GPU host are the ones that can see an order change.
            (string, KernelHost, Device)[] hosts =
            [
                ("Cpu", Devices.Cpu.Kernels, Devices.Cpu),
                ("CpuKernels", Devices.CpuKernels.Kernels, Devices.CpuKernels),
                ("Cpu, 8 partials", Cpu8.Value, Devices.Cpu),
                ("CpuKernels, 7 groups", GpuShapeHost(16, 7), Devices.CpuKernels),
            ];
            foreach (var (name, host, d) in hosts)
            {
                using var tx = d.Upload(x);
                using var scratch = d.Poisoned(Reductions.ScratchLength(host, n));
                using var result = d.Poisoned(1);
                // Sum and L2Norm cover both maps (x and x²); the others differ only in Finish.
                foreach (var op in new[] { Op.Sum, Op.L2Norm })
                {
                    uint first = 0;
                    for (int run = 0; run < 20; run++)
                    {
                        FlatOf(op)(host, tx.View<float>(), result.View<float>(), scratch.View<float>(), ReductionMode.Deterministic);
                        uint bits = BitConverter.SingleToUInt32Bits(result.ToHost()[0]);
                        if (run == 0)
                            first = bits;
                        else if (bits != first)
                        {
                            failures.Add($"{op} on {name}: run {run} gave bits {bits:X8}, run 0 gave {first:X8}");
                            break;
                        }
                    }
                }
            }
            return Verdict(failures, $"n = {n}");
        });

    // ---------------------------------------------------------------- known values

    [Property(MaxTest = 20)]
    public Property Sum_of_1_to_n_is_n_times_n_plus_1_over_2() =>
        Prop.ForAll(Gen.OneOf(Gen.Elements(Gens.EdgeLengths), Gen.Elements(65_537, 1 << 20)).ToArbitrary(), n =>
        {
            var x = Enumerable.Range(1, n).Select(i => (float)i).ToArray();
            double exact = n * (n + 1.0) / 2;
            var failures = new List<string>();
            foreach (var d in Devices.All)
            {
                foreach (var mode in Modes)
                {
                    float got = RunFlat(d.Kernels, d, Op.Sum, x, mode);
                    Expect(failures, $"{Name(d)} {mode}", Op.Sum, got, exact, n, exact, FlatLevels(d.Kernels, mode, n));
                }
            }
            return Verdict(failures, $"n = {n}");
        });

    // A plain float loop is 1% off here; the compensated slices must not drift at all.
    [Fact]
    public void Compensated_sum_of_a_million_tenths_is_accurate()
    {
        const int n = 1_000_000;
        var x = Enumerable.Repeat(0.1f, n).ToArray();
        double exact = n * (double)0.1f;
        float plain = 0;
        foreach (float v in x)
            plain += v;
        foreach (var d in Devices.All)
        {
            // Deterministic: compensated slices and second pass (u each), two trees of depth log2 G.
            double tol = (2 + (2 * Math.Log2(GroupOf(d.Kernels)))) * U * exact;
            Assert.True(Math.Abs(plain - exact) > 100 * tol, $"the data should defeat a plain loop: it is off by {plain - exact}");
            float got = RunFlat(d.Kernels, d, Op.Sum, x, ReductionMode.Deterministic);
            Assert.True(Math.Abs(got - exact) <= tol, $"{Name(d)}: sum {got:R}, exact {exact:R}, |err| {Math.Abs(got - exact):E3} > {tol:E3}");
        }
    }

    /// <summary>
    /// Sums that meet ±∞ or NaN give what float addition gives (+∞ stays +∞, +∞ and −∞ give NaN, a
    /// NaN gives NaN, finite terms that overflow give +∞), on every backend and in both modes, also
    /// where the managed loop's whole blocks hold the special value.
    /// </summary>
    [Property(MaxTest = 20)]
    public Property Sums_meeting_infinities_and_NaN_give_what_float_addition_gives() =>
        Prop.ForAll(Gen.Choose(1, 6000).ToArbitrary(), Gen.Choose(0, int.MaxValue).ToArbitrary(), Gen.Choose(0, 3).ToArbitrary(), (n, pick, kind) =>
        {
            var data = new float[n];
            var r = new Random(pick);
            for (int i = 0; i < n; i++)
                data[i] = (float)((r.NextDouble() * 2) - 1);
            int at = pick % n;
            float expected;
            switch (kind)
            {
                case 0:
                    data[at] = float.PositiveInfinity;
                    expected = float.PositiveInfinity;
                    break;
                case 1:
                    data[at] = float.NegativeInfinity;
                    data[(at + (n / 2)) % n] = n > 1 ? float.PositiveInfinity : float.NegativeInfinity;
                    expected = n > 1 ? float.NaN : float.NegativeInfinity;
                    break;
                case 2:
                    data[at] = float.NaN;
                    expected = float.NaN;
                    break;
                default:
                    // Overflow of finite terms: 2^127 twice or more.
                    Array.Fill(data, 1.7e38f, 0, n);
                    expected = n > 1 ? float.PositiveInfinity : 1.7e38f;
                    break;
            }

            var failures = new List<string>();
            foreach (var d in Devices.All)
            {
                foreach (var mode in Modes)
                {
                    float sum = RunFlat(d.Kernels, d, Op.Sum, data, mode);
                    if (!sum.Equals(expected))
                        failures.Add($"{Name(d)} {mode}: sum {sum:R}, float addition gives {expected:R}");
                    float squares = RunFlat(d.Kernels, d, Op.SumOfSquares, data, mode);
                    // Every special square is +∞ (so is 1.7e38²), except NaN's.
                    float expectedSquares = kind == 2 ? float.NaN : float.PositiveInfinity;
                    if (!squares.Equals(expectedSquares))
                        failures.Add($"{Name(d)} {mode}: sum of squares {squares:R}, float addition gives {expectedSquares:R}");
                }
            }

            return Verdict(failures, $"n = {n}, special {kind} at {at}");
        });

    [Property(MaxTest = 30)]
    public Property Max_with_a_NaN_anywhere_is_NaN() =>
        Prop.ForAll(Gens.Matrix().Where(m => m.Rows > 0 && m.Cols > 0).ToArbitrary(), Gen.Choose(0, int.MaxValue).ToArbitrary(), (m, pick) =>
        {
            int at = pick % m.Data.Length, row = at / m.Cols, col = at % m.Cols;
            var data = (float[])m.Data.Clone();
            data[at] = float.NaN;
            var failures = new List<string>();
            foreach (var d in Devices.All)
            {
                foreach (var mode in Modes)
                {
                    float flat = RunFlat(d.Kernels, d, Op.Max, data, mode);
                    if (!float.IsNaN(flat))
                        failures.Add($"{Name(d)} {mode}: flat max {flat:R}");
                }
                var rows = RunMatrix(RowsOf(Op.Max), d.Kernels, d, data, m.Rows, m.Cols, m.Rows);
                var cols = RunMatrix(ColumnsOf(Op.Max), d.Kernels, d, data, m.Rows, m.Cols, m.Cols);
                for (int r = 0; r < m.Rows; r++)
                {
                    if (float.IsNaN(rows[r]) != (r == row))
                        failures.Add($"{Name(d)}: row {r} max {rows[r]:R}");
                }
                for (int c = 0; c < m.Cols; c++)
                {
                    if (float.IsNaN(cols[c]) != (c == col))
                        failures.Add($"{Name(d)}: column {c} max {cols[c]:R}");
                }
            }
            return Verdict(failures, $"{m}, NaN at ({row}, {col})");
        });

    [Fact]
    public void Plain_comparison_drops_NaN_but_MaxOp_keeps_it()
    {
        static float Plain(float a, float b) => a > b ? a : b;
        var op = default(MaxOp);
        Assert.Equal(1f, Plain(float.NaN, 1f));
        Assert.True(float.IsNaN(op.Combine(float.NaN, 1f)));
        Assert.True(float.IsNaN(op.Combine(1f, float.NaN)));
        Assert.True(float.IsNaN(op.Combine(float.NaN, float.NegativeInfinity)));
    }

    [Fact]
    public void L2Norm_of_3_4_is_5()
    {
        foreach (var d in Devices.All)
        {
            foreach (var mode in Modes)
                Assert.Equal(5f, RunFlat(d.Kernels, d, Op.L2Norm, [3f, 4f], mode));
            Assert.Equal([5f, 5f], RunMatrix(Reductions.L2NormRows, d.Kernels, d, [3f, 4f, -4f, -3f], 2, 2, 2));
            Assert.Equal([5f, 5f], RunMatrix(Reductions.L2NormColumns, d.Kernels, d, [3f, 4f, -4f, -3f], 2, 2, 2));
        }
    }

    [Fact]
    public void Empty_inputs_give_0_for_sums_and_NaN_for_mean()
    {
        foreach (var d in Devices.All)
        {
            foreach (var mode in Modes)
            {
                foreach (var op in new[] { Op.Sum, Op.SumOfSquares, Op.L2Norm })
                    Assert.Equal(0f, RunFlat(d.Kernels, d, op, [], mode));
                Assert.True(float.IsNaN(RunFlat(d.Kernels, d, Op.Mean, [], mode)));
            }
            Assert.Equal([0f, 0f, 0f], RunMatrix(Reductions.SumRows, d.Kernels, d, [], 3, 0, 3));
            Assert.Equal([0f, 0f], RunMatrix(Reductions.L2NormColumns, d.Kernels, d, [], 0, 2, 2));
            Assert.All(RunMatrix(Reductions.MeanRows, d.Kernels, d, [], 3, 0, 3), v => Assert.True(float.IsNaN(v)));
            Assert.All(RunMatrix(Reductions.MeanColumns, d.Kernels, d, [], 0, 2, 2), v => Assert.True(float.IsNaN(v)));
            Assert.Empty(RunMatrix(Reductions.MaxRows, d.Kernels, d, [], 0, 4, 0));
            Assert.Empty(RunMatrix(Reductions.MaxColumns, d.Kernels, d, [], 4, 0, 0));
        }
    }

    [Fact]
    public void Max_of_empty_throws()
    {
        var d = Devices.Cpu;
        var e = Assert.Throws<ArgumentException>(() => RunFlat(d.Kernels, d, Op.Max, [], ReductionMode.Deterministic));
        Assert.Contains("empty", e.Message);
        Assert.Contains("undefined", e.Message);
        e = Assert.Throws<ArgumentException>(() => RunMatrix(Reductions.MaxRows, d.Kernels, d, [], 3, 0, 3));
        Assert.Contains("undefined", e.Message);
        e = Assert.Throws<ArgumentException>(() => RunMatrix(Reductions.MaxColumns, d.Kernels, d, [], 0, 2, 2));
        Assert.Contains("undefined", e.Message);
    }

    // The carry of a compensated sum turns NaN once the running sum is infinite; it must not leak.
    [Fact]
    public void Infinities_and_overflow_give_what_float_arithmetic_gives()
    {
        foreach (var d in Devices.All)
        {
            foreach (var mode in Modes)
            {
                string at = $"{Name(d)} {mode}";
                Assert.True(float.PositiveInfinity == RunFlat(d.Kernels, d, Op.Sum, [1f, float.PositiveInfinity, 2f], mode), at);
                Assert.True(float.IsNaN(RunFlat(d.Kernels, d, Op.Sum, [float.PositiveInfinity, 1f, float.NegativeInfinity], mode)), at);
                // Every partial is NaN, so Atomic mode combines into a NaN result: ILGPU's own float
                // Atomic.Add spins forever there (it compares with ==); this would hang, not fail.
                Assert.True(float.IsNaN(RunFlat(d.Kernels, d, Op.Sum, Enumerable.Repeat(float.NaN, 64).ToArray(), mode)), at);
                Assert.True(float.PositiveInfinity == RunFlat(d.Kernels, d, Op.Sum, [3e38f, 3e38f, 1f], mode), at);
                Assert.True(float.NegativeInfinity == RunFlat(d.Kernels, d, Op.Mean, [-3e38f, -3e38f], mode), at);
                Assert.True(float.PositiveInfinity == RunFlat(d.Kernels, d, Op.L2Norm, [1e20f, 1f], mode), at);
                Assert.True(float.NegativeInfinity == RunFlat(d.Kernels, d, Op.Max, [float.NegativeInfinity, float.NegativeInfinity], mode), at);
                Assert.True(float.PositiveInfinity == RunFlat(d.Kernels, d, Op.Max, [1f, float.PositiveInfinity, 2f], mode), at);
            }
            Assert.Equal([float.PositiveInfinity, 3f], RunMatrix(Reductions.SumRows, d.Kernels, d, [float.PositiveInfinity, 1f, 1f, 2f], 2, 2, 2));
            Assert.Equal([float.PositiveInfinity, 3f], RunMatrix(Reductions.SumColumns, d.Kernels, d, [float.PositiveInfinity, 1f, 1f, 2f], 2, 2, 2));
        }
    }

    // ---------------------------------------------------------------- invariants

    [Property(MaxTest = 30)]
    public Property Operators_obey_their_law() =>
        Prop.ForAll(Gens.Float(-1e4f, 1e4f).ToArbitrary(), Gens.Float(-1e4f, 1e4f).ToArbitrary(), Gens.Float(-1e4f, 1e4f).ToArbitrary(), (a, b, c) =>
            Law(default(SumOp), a, b, c, exactAssociativity: false)
                .And(Law(default(MeanOp), a, b, c, exactAssociativity: false))
                .And(Law(default(MaxOp), a, b, c, exactAssociativity: true))
                .And(Law(default(SumOfSquaresOp), a, b, c, exactAssociativity: false))
                .And(Law(default(L2NormOp), a, b, c, exactAssociativity: false)));

    [Property(MaxTest = 30)]
    public Property Sum_of_x_and_minus_x_is_about_zero() =>
        Prop.ForAll(Gens.ReductionVector().ToArbitrary(), x =>
        {
            var z = x.Concat(x.Select(v => -v)).ToArray();
            double abs = z.Sum(v => Math.Abs((double)v));
            var failures = new List<string>();
            foreach (var d in Devices.All)
            {
                foreach (var mode in Modes)
                {
                    float got = RunFlat(d.Kernels, d, Op.Sum, z, mode);
                    Expect(failures, $"{Name(d)} {mode}", Op.Sum, got, 0, z.Length, abs, FlatLevels(d.Kernels, mode, z.Length));
                }
            }
            return Verdict(failures, $"n = {z.Length}");
        });

    [Property(MaxTest = 30)]
    public Property L2Norm_squared_is_SumOfSquares() =>
        Prop.ForAll(Gens.ReductionVector().ToArbitrary(), x =>
        {
            var failures = new List<string>();
            foreach (var d in Devices.All)
            {
                double l2 = RunFlat(d.Kernels, d, Op.L2Norm, x, ReductionMode.Deterministic);
                double ss = RunFlat(d.Kernels, d, Op.SumOfSquares, x, ReductionMode.Deterministic);
                // The same deterministic sum of squares, then one rounded square root:
                // (√s(1 + δ))² = s(1 + 2δ + δ²), |δ| <= u.
                if (!(Math.Abs((l2 * l2) - ss) <= 2.5 * U * ss))
                    failures.Add($"{Name(d)}: L2² = {l2 * l2:R}, SumOfSquares = {ss:R}");
            }
            return Verdict(failures, $"n = {x.Length}");
        });

    [Property(MaxTest = 30)]
    public Property Max_bounds_every_element_and_is_one_of_them() =>
        Prop.ForAll(Gens.Matrix().Where(m => m.Rows > 0 && m.Cols > 0).ToArbitrary(), m =>
        {
            var failures = new List<string>();
            foreach (var d in Devices.All)
            {
                float flat = RunFlat(d.Kernels, d, Op.Max, m.Data, ReductionMode.Atomic);
                if (!IsMaxOf(flat, m.Data))
                    failures.Add($"{Name(d)}: flat max {flat:R}");
                var rows = RunMatrix(Reductions.MaxRows, d.Kernels, d, m.Data, m.Rows, m.Cols, m.Rows);
                for (int r = 0; r < m.Rows; r++)
                {
                    if (!IsMaxOf(rows[r], Row(m, r)))
                        failures.Add($"{Name(d)}: row {r} max {rows[r]:R}");
                }
                var cols = RunMatrix(Reductions.MaxColumns, d.Kernels, d, m.Data, m.Rows, m.Cols, m.Cols);
                for (int c = 0; c < m.Cols; c++)
                {
                    if (!IsMaxOf(cols[c], Column(m, c)))
                        failures.Add($"{Name(d)}: column {c} max {cols[c]:R}");
                }
            }
            return Verdict(failures, m.ToString());
        });

    // Rows and columns are different kernels; reducing the rows of x must agree with reducing
    // the columns of its transpose.
    [Property(MaxTest = 30)]
    public Property Rows_of_x_are_columns_of_its_transpose() =>
        Prop.ForAll(Gens.Matrix().ToArbitrary(), m =>
        {
            var t = new float[m.Data.Length];
            for (int r = 0; r < m.Rows; r++)
            {
                for (int c = 0; c < m.Cols; c++)
                    t[(c * m.Rows) + r] = m.Data[(r * m.Cols) + c];
            }
            var failures = new List<string>();
            foreach (var d in Devices.All)
            {
                var sumRows = RunMatrix(Reductions.SumRows, d.Kernels, d, m.Data, m.Rows, m.Cols, m.Rows);
                var sumCols = RunMatrix(Reductions.SumColumns, d.Kernels, d, t, m.Cols, m.Rows, m.Rows);
                for (int r = 0; r < m.Rows; r++)
                {
                    double abs = Row(m, r).Sum(v => Math.Abs((double)v));
                    // Each is within levels·u·Σ|x| of the exact sum, so of each other within twice that.
                    double tol = 2 * Math.Min(m.Cols, MatrixLevels(d.Kernels)) * U * abs;
                    if (!(Math.Abs(sumRows[r] - sumCols[r]) <= tol))
                        failures.Add($"{Name(d)}: row {r} sum {sumRows[r]:R} but transposed column sum {sumCols[r]:R}");
                }
                if (m.Cols > 0)
                {
                    var maxRows = RunMatrix(Reductions.MaxRows, d.Kernels, d, m.Data, m.Rows, m.Cols, m.Rows);
                    var maxCols = RunMatrix(Reductions.MaxColumns, d.Kernels, d, t, m.Cols, m.Rows, m.Rows);
                    if (!maxRows.SequenceEqual(maxCols))
                        failures.Add($"{Name(d)}: row maxima differ from transposed column maxima");
                }
            }
            return Verdict(failures, m.ToString());
        });

    // ---------------------------------------------------------------- argument checks

    [Fact]
    public void Bad_arguments_name_the_op_and_both_sizes()
    {
        var d = Devices.Cpu;
        var h = d.Kernels;
        using var x = d.Upload(new float[5]);
        using var two = d.Upload(new float[2]);
        using var none = d.Upload(Array.Empty<float>());

        var e = Assert.Throws<ArgumentException>(() => Reductions.Sum(h, x.View<float>(), two.View<float>(), two.View<float>()));
        Assert.Contains("Sum", e.Message);
        Assert.Contains("result", e.Message);
        Assert.Contains("2", e.Message);

        using var one = d.Upload(new float[1]);
        using var big = d.Upload(new float[4099]);
        int need = Reductions.ScratchLength(h, 4099);
        e = Assert.Throws<ArgumentException>(() => Reductions.Mean(h, big.View<float>(), one.View<float>(), none.View<float>()));
        Assert.Contains("Mean", e.Message);
        Assert.Contains("scratch", e.Message);
        Assert.Contains(need.ToString(System.Globalization.CultureInfo.InvariantCulture), e.Message);

        // Atomic mode needs no scratch.
        Reductions.Sum(h, big.View<float>(), one.View<float>(), default, ReductionMode.Atomic);
        Assert.Equal(0f, one.ToHost()[0]);

        e = Assert.Throws<ArgumentException>(() => Reductions.SumRows(h, x.View<float>(), 2, 3, two.View<float>()));
        Assert.Contains("SumRows", e.Message);
        Assert.Contains("5", e.Message);
        Assert.Contains("(R, C) = (2, 3)", e.Message);
        Assert.Contains("6", e.Message);

        e = Assert.Throws<ArgumentException>(() => Reductions.MaxColumns(h, x.View<float>(), 5, 1, two.View<float>()));
        Assert.Contains("MaxColumns", e.Message);
        Assert.Contains("result", e.Message);

        Assert.Throws<ArgumentOutOfRangeException>(() => Reductions.SumColumns(h, none.View<float>(), -1, 0, none.View<float>()));
        Assert.Throws<ArgumentOutOfRangeException>(() => Reductions.Sum(h, x.View<float>(), one.View<float>(), default, (ReductionMode)7));
    }

    // ---------------------------------------------------------------- helpers

    private static void CheckFlat(KernelHost host, Device d, float[] x, ReductionMode mode, string where, List<string> failures, Op[]? ops = null)
    {
        foreach (var op in ops ?? Ops)
        {
            if (op == Op.Max && x.Length == 0)
                continue;
            float got = RunFlat(host, d, op, x, mode);
            Expect(failures, where, op, got, Reference(op, x), x.Length, AbsMapped(op, x), FlatLevels(host, mode, x.Length));
        }
    }

    private static void CheckRows(KernelHost host, Device d, Matrix m, string where, List<string> failures, Op[] ops)
    {
        foreach (var op in ops)
        {
            if (op == Op.Max && m.Cols == 0 && m.Rows > 0)
                continue;
            var got = RunMatrix(RowsOf(op), host, d, m.Data, m.Rows, m.Cols, m.Rows);
            var expected = new double[m.Rows];
            RowsReferenceOf(op)(m.Data, m.Rows, m.Cols, expected);
            for (int r = 0; r < m.Rows; r++)
                Expect(failures, $"{where} row {r}", op, got[r], expected[r], m.Cols, AbsMapped(op, Row(m, r)), MatrixLevels(host));
        }
    }

    private static void CheckColumns(KernelHost host, Device d, Matrix m, string where, List<string> failures, Op[] ops)
    {
        foreach (var op in ops)
        {
            if (op == Op.Max && m.Rows == 0 && m.Cols > 0)
                continue;
            var got = RunMatrix(ColumnsOf(op), host, d, m.Data, m.Rows, m.Cols, m.Cols);
            var expected = new double[m.Cols];
            ColumnsReferenceOf(op)(m.Data, m.Rows, m.Cols, expected);
            for (int c = 0; c < m.Cols; c++)
                Expect(failures, $"{where} column {c}", op, got[c], expected[c], m.Rows, AbsMapped(op, Column(m, c)), MatrixLevels(host));
        }
    }

    // Tolerance. (n − 1)·u·Σ|m(x)| bounds float summation of n terms in ANY order (Higham,
    // Accuracy and Stability of Numerical Algorithms, §4.2), which covers short inputs and any
    // launch shape. For long inputs the kernels do far better, whatever n (compensated slices,
    // then float trees and a compensated second pass; the header of Reductions.cs derives
    // (2 + 2·log2 G)·u·Σ|x| for flat sums and (1 + log2 G)·u·Σ|x| per row or column, one u more
    // for squares), so the factor n is capped at those "levels", plus the P partials added
    // atomically in Atomic mode. Mean adds one rounding of the division; the L2 norm's error
    // follows from the sum of squares' through √: |√a − √b| <= |a − b| / √b, plus one rounding.
    // Max is exact.
    private static void Expect(List<string> failures, string where, Op op, float got, double expected, int n, double absMapped, double levels)
    {
        bool ok;
        double tol = 0;
        if (op == Op.Max || !double.IsFinite(expected))
        {
            ok = (double)got == expected || (float.IsNaN(got) && double.IsNaN(expected));
        }
        else
        {
            double sumTol = Math.Min(n, levels) * U * absMapped;
            tol = op switch
            {
                Op.Mean => (sumTol / n) + (U * Math.Abs(expected)),
                Op.L2Norm => expected > 0 ? (sumTol / expected) + (U * expected) : 0,
                _ => sumTol,
            };
            ok = Math.Abs(got - expected) <= tol;
        }
        if (!ok)
            failures.Add($"{op} ({where}): got {got:R}, expected {expected:R}, |err| {Math.Abs(got - expected):E3} > tol {tol:E3}");
    }

    private static double FlatLevels(KernelHost host, ReductionMode mode, int n) =>
        3 + (2 * Math.Ceiling(Math.Log2(GroupOf(host)))) + (mode == ReductionMode.Atomic ? Reductions.ScratchLength(host, n) : 0);

    private static double MatrixLevels(KernelHost host) => 2 + Math.Ceiling(Math.Log2(GroupOf(host)));

    private static int GroupOf(KernelHost host) => host.RunsManaged ? 1 : host.Launch.ReduceGroupSize;

    private static Property Verdict(List<string> failures, string what) =>
        (failures.Count == 0).Label(failures.Count == 0 ? what : $"{what}: {failures.Count} mismatches, first: {string.Join(" | ", failures.Take(3))}");

    private static string Name(Device d) => ReferenceEquals(d, Devices.CpuKernels) ? "CpuKernels" : "Cpu";

    private static KernelHost GpuShapeHost(int group, int groups)
    {
        lock (GpuShapeHosts)
        {
            if (!GpuShapeHosts.TryGetValue((group, groups), out var host))
            {
                var sim = Devices.CpuKernels;
                var policy = new LaunchPolicy(GroupSize: 1, MaxGroups: groups, ReduceGroupSize: group, MaxReduceGroups: groups);
                host = new KernelHost(sim.Accelerator, sim.Stream, policy, KernelBackend.CpuAccelerator);
                GpuShapeHosts[(group, groups)] = host;
            }
            return host;
        }
    }

    private static float RunFlat(KernelHost host, Device d, Op op, float[] x, ReductionMode mode)
    {
        using var tx = d.Upload(x);
        using var scratch = d.Poisoned(Reductions.ScratchLength(host, x.Length));
        using var result = d.Poisoned(1);
        FlatOf(op)(host, tx.View<float>(), result.View<float>(), scratch.View<float>(), mode);
        return result.ToHost()[0];
    }

    private static float[] RunMatrix(MatrixLaunch launch, KernelHost host, Device d, float[] x, int rows, int cols, int outputs)
    {
        using var tx = d.Upload(x);
        using var result = d.Poisoned(outputs);
        launch(host, tx.View<float>(), rows, cols, result.View<float>());
        return result.ToHost();
    }

    private static FlatLaunch FlatOf(Op op) => op switch
    {
        Op.Sum => Reductions.Sum,
        Op.Mean => Reductions.Mean,
        Op.Max => Reductions.Max,
        Op.SumOfSquares => Reductions.SumOfSquares,
        _ => Reductions.L2Norm,
    };

    private static MatrixLaunch RowsOf(Op op) => op switch
    {
        Op.Sum => Reductions.SumRows,
        Op.Mean => Reductions.MeanRows,
        Op.Max => Reductions.MaxRows,
        Op.SumOfSquares => Reductions.SumOfSquaresRows,
        _ => Reductions.L2NormRows,
    };

    private static MatrixLaunch ColumnsOf(Op op) => op switch
    {
        Op.Sum => Reductions.SumColumns,
        Op.Mean => Reductions.MeanColumns,
        Op.Max => Reductions.MaxColumns,
        Op.SumOfSquares => Reductions.SumOfSquaresColumns,
        _ => Reductions.L2NormColumns,
    };

    private static MatrixReference RowsReferenceOf(Op op) => op switch
    {
        Op.Sum => ReductionsReference.SumRowsReference,
        Op.Mean => ReductionsReference.MeanRowsReference,
        Op.Max => ReductionsReference.MaxRowsReference,
        Op.SumOfSquares => ReductionsReference.SumOfSquaresRowsReference,
        _ => ReductionsReference.L2NormRowsReference,
    };

    private static MatrixReference ColumnsReferenceOf(Op op) => op switch
    {
        Op.Sum => ReductionsReference.SumColumnsReference,
        Op.Mean => ReductionsReference.MeanColumnsReference,
        Op.Max => ReductionsReference.MaxColumnsReference,
        Op.SumOfSquares => ReductionsReference.SumOfSquaresColumnsReference,
        _ => ReductionsReference.L2NormColumnsReference,
    };

    private static double Reference(Op op, float[] x) => op switch
    {
        Op.Sum => ReductionsReference.SumReference(x),
        Op.Mean => ReductionsReference.MeanReference(x),
        Op.Max => ReductionsReference.MaxReference(x),
        Op.SumOfSquares => ReductionsReference.SumOfSquaresReference(x),
        _ => ReductionsReference.L2NormReference(x),
    };

    // Σ|m(x)|: what each term contributes to the rounding bound.
    private static double AbsMapped(Op op, float[] x) =>
        op is Op.SumOfSquares or Op.L2Norm ? x.Sum(v => (double)v * v) : x.Sum(v => Math.Abs((double)v));

    private static float[] Row(Matrix m, int r) => m.Data.AsSpan(r * m.Cols, m.Cols).ToArray();

    private static float[] Column(Matrix m, int c) => Enumerable.Range(0, m.Rows).Select(r => m.Data[(r * m.Cols) + c]).ToArray();

    private static bool IsMaxOf(float max, float[] values) => values.All(v => v <= max) && values.Contains(max);

    private static Property Law<TOp>(TOp op, float a, float b, float c, bool exactAssociativity)
        where TOp : struct, IReduceOp
    {
        string name = typeof(TOp).Name;
        float ma = op.Map(a), mb = op.Map(b), mc = op.Map(c);
        bool identity = op.Combine(op.Identity, ma) == ma && op.Combine(ma, op.Identity) == ma;
        bool commutative = op.Combine(ma, mb) == op.Combine(mb, ma);
        double left = op.Combine(op.Combine(ma, mb), mc), right = op.Combine(ma, op.Combine(mb, mc));
        double scale = Math.Abs(ma) + Math.Abs(mb) + Math.Abs(mc);
        bool associative = exactAssociativity ? left == right : Math.Abs(left - right) <= 4 * U * scale;
        bool isSum = op.IsSum == (op.Combine(ma, mb) == ma + mb && op.Identity == 0);
        return identity.Label($"{name}: identity is neutral")
            .And(commutative.Label($"{name}: Combine commutes"))
            .And(associative.Label($"{name}: Combine associates ({left:R} vs {right:R})"))
            .And(isSum.Label($"{name}: IsSum matches Combine"));
    }
}
