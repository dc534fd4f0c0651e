namespace IlgpuTrain.Functional;

/// <summary>
/// Sums small host vectors over the ranks of a data-parallel run (an all-reduce): what a
/// synchronized batch normalization needs to share its per-channel sums. The training library's
/// process groups implement it; set one on <see cref="StepScope.BatchNormSync"/> for a step.
/// </summary>
public interface ICrossRankSum
{
    /// <summary>Replaces <paramref name="values"/> on every rank by their sum over the ranks; every rank calls it in the same order.</summary>
    /// <param name="values">This rank's values; the sums on return.</param>
    /// <param name="what">What is summed, for a timeout message.</param>
    void Sum(Span<double> values, string what);
}
