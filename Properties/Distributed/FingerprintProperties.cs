using IlgpuTrain.Training.Distributed;

namespace IlgpuTrain.Properties.Distributed;

/// <summary>The start-of-run fingerprint comparison names each line where a rank differs from rank 0, with both values.</summary>
public class FingerprintProperties
{
    [Property(MaxTest = 100)]
    public Property Equal_fingerprints_agree_and_one_changed_line_is_named_with_both_values() =>
        Prop.ForAll(Gen.Choose(2, 6).SelectMany(w => Gen.Choose(1, w - 1).SelectMany(r => Gen.Choose(0, 3).Select(line => (w, r, line)))).ToArbitrary(), c =>
        {
            string[] lines = ["world size: 2", "model: Dense(10)", "training data: fashion-mnist, 512 samples", "seed: 0"];
            var same = Enumerable.Repeat<IReadOnlyList<string>>(lines, c.w).ToList();
            var changed = same.ToList();
            var edited = lines.ToArray();
            edited[c.line] = edited[c.line].Split(':')[0] + ": other";
            changed[c.r] = edited;
            string? problem = Fingerprint.Differences(changed);
            string name = lines[c.line].Split(':')[0];
            bool named = problem is not null && problem.Contains($"{name}: rank 0 has \"{lines[c.line].Split(": ")[1]}\", rank {c.r} has \"other\"", StringComparison.Ordinal);
            return (Fingerprint.Differences(same) is null && named).Label(problem ?? "no difference found");
        });
}
