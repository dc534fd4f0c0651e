namespace IlgpuTrain.Properties.Kernels.Runtime;

/// <summary>
/// SlidingWindow.OutputOfTap inverts the forward window: it names output o for input i and tap t
/// exactly when o's window (o stride - pad + t dilation) reads i, found here by enumerating every
/// output, and -1 when no output's tap t reads i.
/// </summary>
public class SlidingWindowProperties
{
    [Property(MaxTest = 300)]
    public Property Output_of_tap_is_the_one_output_whose_tap_reads_the_input() =>
        Prop.ForAll(
            (from outSize in Gen.Choose(1, 9)
             from stride in Gen.Choose(1, 4)
             from pad in Gen.Choose(0, 3)
             from dilation in Gen.Choose(1, 3)
             from kernel in Gen.Choose(1, 4)
             select (outSize, stride, pad, dilation, kernel)).ToArbitrary(),
            w =>
            {
                var (outSize, stride, pad, dilation, kernel) = w;
                int inSize = ((outSize - 1) * stride) + ((kernel - 1) * dilation) + 1 - (2 * pad);
                for (int i = -2; i < Math.Max(inSize, 1) + 2; i++)
                {
                    for (int t = 0; t < kernel; t++)
                    {
                        int expected = -1;
                        for (int o = 0; o < outSize; o++)
                        {
                            if ((o * stride) - pad + (t * dilation) == i)
                                expected = o;
                        }

                        int got = SlidingWindow.OutputOfTap(i, t, stride, pad, dilation, outSize);
                        if (got != expected)
                            return false.Label($"input {i}, tap {t} (out {outSize}, stride {stride}, pad {pad}, dilation {dilation}): got {got}, expected {expected}");
                    }
                }

                return true.ToProperty();
            });
}
