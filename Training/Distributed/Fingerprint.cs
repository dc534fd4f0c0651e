using System.Text;

namespace IlgpuTrain.Training.Distributed;

/// <summary>
/// What every rank of a run must agree on (model, data, batch size, seed, world size, the state it
/// starts from), as named lines "what: value". The ranks all-gather theirs at the start, so a rank
/// launched with another model or data set is caught before the first step, with what differs.
/// </summary>
public static class Fingerprint
{
    /// <summary>Each rank's lines gathered on every rank.</summary>
    /// <param name="group">The ranks.</param>
    /// <param name="lines">This rank's "what: value" lines.</param>
    /// <returns>The lines of each rank, in rank order.</returns>
    public static string[][] Gather(ProcessGroup group, IReadOnlyList<string> lines)
    {
        ArgumentNullException.ThrowIfNull(group);
        ArgumentNullException.ThrowIfNull(lines);
        return [.. group.AllGather(Encoding.UTF8.GetBytes(string.Join('\n', lines)), "the run's fingerprint").Select(b => Encoding.UTF8.GetString(b).Split('\n'))];
    }

    /// <summary>
    /// What differs between rank 0's lines and another rank's, or null when all agree: each
    /// differing line with both values, one per line.
    /// </summary>
    /// <param name="ranks">Each rank's lines, in rank order.</param>
    /// <returns>The differences, or null.</returns>
    public static string? Differences(IReadOnlyList<IReadOnlyList<string>> ranks)
    {
        ArgumentNullException.ThrowIfNull(ranks);
        if (ranks.Count < 2)
            return null;
        var problems = new List<string>();
        var reference = ranks[0];
        for (int r = 1; r < ranks.Count; r++)
        {
            var mine = ranks[r];
            for (int i = 0; i < Math.Max(reference.Count, mine.Count); i++)
            {
                string? a = i < reference.Count ? reference[i] : null, b = i < mine.Count ? mine[i] : null;
                if (a == b)
                    continue;
                string what = Name(a ?? b!);
                problems.Add($"{what}: rank 0 has \"{Value(a)}\", rank {r} has \"{Value(b)}\"");
            }
        }

        return problems.Count == 0 ? null : string.Join("\n", problems);
    }

    private static string Name(string line) => line.IndexOf(':', StringComparison.Ordinal) is int at and > 0 ? line[..at] : line;

    private static string Value(string? line) => line is null ? "(nothing)" : line.IndexOf(':', StringComparison.Ordinal) is int at and > 0 ? line[(at + 1)..].Trim() : line;
}
