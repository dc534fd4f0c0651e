using System.Runtime.Intrinsics;
using IlgpuTrain.Kernels.Runtime;

namespace IlgpuTrain.Properties.Kernels.Runtime;

/// <summary>
/// The lane primitives (Kernels/Runtime/Lanes.cs): on one lane each is the plain IEEE float
/// operation, comparison or 32-bit integer operation it is named for, and on eight lanes each lane
/// is what one lane gives, bit for bit. Inputs are random bit patterns (every exponent, NaN
/// payloads, subnormals, signed zeros, infinities).
/// </summary>
public class LanesProperties
{
    private static Gen<float> Floats =>
        Gen.OneOf(
            Gen.Choose(int.MinValue, int.MaxValue).Select(BitConverter.Int32BitsToSingle),
            Gen.Elements(0f, -0f, 1f, -1f, 1e-45f, float.MaxValue, float.PositiveInfinity, float.NegativeInfinity, float.NaN),
            Gen.Choose(-1000, 1000).Select(i => i / 8f));

    private static uint B(float f) => BitConverter.SingleToUInt32Bits(f);

    private static uint Mask(bool b) => b ? 0xFFFFFFFFu : 0u;

    // The primitive names and, for two lanes a and b (and a shift count), its one-lane result and the plain reference bits.
    private static IEnumerable<(string Name, uint Lane, uint Reference)> OneLane(float a, float b, int shift)
    {
        Lane1 x = a, y = b;
        yield return ("+", B((x + y).V), B(a + b));
        yield return ("-", B((x - y).V), B(a - b));
        yield return ("*", B((x * y).V), B(a * b));
        yield return ("/", B((x / y).V), B(a / b));
        yield return ("negate", B((-x).V), B(-a));
        yield return ("&", B((x & y).V), B(a) & B(b));
        yield return ("|", B((x | y).V), B(a) | B(b));
        yield return ("Bits", B(Lane1.Bits(B(a)).V), B(a));
        yield return ("Less", B(Lane1.Less(x, y).V), Mask(a < b));
        yield return ("LessOrEqual", B(Lane1.LessOrEqual(x, y).V), Mask(a <= b));
        yield return ("Greater", B(Lane1.Greater(x, y).V), Mask(a > b));
        yield return ("Equal", B(Lane1.Equal(x, y).V), Mask(a == b));
        yield return ("Select true", B(Lane1.Select(Lane1.Equal(x, x), x, y).V), float.IsNaN(a) ? B(b) : B(a));
        yield return ("Select false", B(Lane1.Select(Lane1.Less(x, x), x, y).V), B(b));
        yield return ("Abs", B(Lane1.Abs(x).V), B(a) & 0x7FFFFFFFu);
        yield return ("Sqrt", B(Lane1.Sqrt(x).V), B(MathF.Sqrt(a)));
        yield return ("AddBits", B(Lane1.AddBits(x, y).V), unchecked(B(a) + B(b)));
        yield return ("GreaterBits", B(Lane1.GreaterBits(x, y).V), Mask((int)B(a) > (int)B(b)));
        yield return ("ShiftLeft", B(Lane1.ShiftLeft(x, shift).V), B(a) << shift);
        yield return ("ShiftRightLogical", B(Lane1.ShiftRightLogical(x, shift).V), B(a) >> shift);
    }

    // The same primitives on eight lanes, lane by lane in the order of OneLane.
    private static IEnumerable<(string Name, Vector256<float> Lanes)> EightLanes(Vector256<float> a, Vector256<float> b, int shift)
    {
        Lane8 x = new(a), y = new(b);
        yield return ("+", (x + y).V);
        yield return ("-", (x - y).V);
        yield return ("*", (x * y).V);
        yield return ("/", (x / y).V);
        yield return ("negate", (-x).V);
        yield return ("&", (x & y).V);
        yield return ("|", (x | y).V);
        yield return ("Bits", a);
        yield return ("Less", Lane8.Less(x, y).V);
        yield return ("LessOrEqual", Lane8.LessOrEqual(x, y).V);
        yield return ("Greater", Lane8.Greater(x, y).V);
        yield return ("Equal", Lane8.Equal(x, y).V);
        yield return ("Select true", Lane8.Select(Lane8.Equal(x, x), x, y).V);
        yield return ("Select false", Lane8.Select(Lane8.Less(x, x), x, y).V);
        yield return ("Abs", Lane8.Abs(x).V);
        yield return ("Sqrt", Lane8.Sqrt(x).V);
        yield return ("AddBits", Lane8.AddBits(x, y).V);
        yield return ("GreaterBits", Lane8.GreaterBits(x, y).V);
        yield return ("ShiftLeft", Lane8.ShiftLeft(x, shift).V);
        yield return ("ShiftRightLogical", Lane8.ShiftRightLogical(x, shift).V);
    }

    [Property(MaxTest = 300)]
    public Property One_lane_is_the_plain_float_or_integer_operation() =>
        Prop.ForAll(Floats.ToArbitrary(), Floats.ToArbitrary(), Gen.Choose(0, 31).ToArbitrary(), (a, b, shift) =>
        {
            var wrong = OneLane(a, b, shift)
                .Where(r => r.Lane != r.Reference)
                .Select(r => $"{r.Name}: {r.Lane:X8} vs {r.Reference:X8}")
                .ToList();
            return (wrong.Count == 0).Label($"a = {a} ({B(a):X8}), b = {b} ({B(b):X8}), shift {shift}: {string.Join("; ", wrong)}");
        });

    [Property(MaxTest = 200)]
    public Property Each_of_eight_lanes_is_what_one_lane_gives_bit_for_bit() =>
        Prop.ForAll(Gen.ArrayOf(Floats, 8).ToArbitrary(), Gen.ArrayOf(Floats, 8).ToArbitrary(), Gen.Choose(0, 31).ToArbitrary(), (a, b, shift) =>
        {
            var eight = EightLanes(Vector256.Create(a), Vector256.Create(b), shift).ToList();
            var wrong = new List<string>();
            for (int lane = 0; lane < 8; lane++)
            {
                var one = OneLane(a[lane], b[lane], shift).ToList();
                for (int op = 0; op < one.Count; op++)
                {
                    uint got = B(eight[op].Lanes.GetElement(lane));
                    if (eight[op].Name != one[op].Name)
                        wrong.Add($"the lists disagree at {op}: {eight[op].Name} vs {one[op].Name}");
                    else if (got != one[op].Lane)
                        wrong.Add($"{one[op].Name} lane {lane}: {got:X8} vs one lane's {one[op].Lane:X8} (a = {a[lane]}, b = {b[lane]})");
                }
            }

            return (wrong.Count == 0).Label(string.Join("; ", wrong.Take(5)));
        });
}
