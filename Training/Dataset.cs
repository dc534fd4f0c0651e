namespace IlgpuTrain.Training;

/// <summary>
/// A labelled data set held on the host: features as float32 (already normalized, row-major per
/// sample) and an integer class label per sample.
/// </summary>
public interface IDataset
{
    /// <summary>A short name for messages and logs, such as "Fashion-MNIST train".</summary>
    string Name { get; }

    /// <summary>Number of samples.</summary>
    int Count { get; }

    /// <summary>Per-sample feature shape, without the batch: (1, 28, 28) for Fashion-MNIST, (3, 32, 32) for CIFAR-10.</summary>
    Shape SampleShape { get; }

    /// <summary>Number of classes; labels are in [0, Classes).</summary>
    int Classes { get; }

    /// <summary>Copies the samples at <paramref name="indices"/> into <paramref name="x"/> (indices.Length x SampleShape.Length floats) and their labels into <paramref name="labels"/>.</summary>
    /// <param name="indices">Sample indices in [0, Count).</param>
    /// <param name="x">Destination features.</param>
    /// <param name="labels">Destination labels.</param>
    void Gather(ReadOnlySpan<int> indices, Span<float> x, Span<int> labels);
}

/// <summary>
/// A data set whose samples also carry float targets: (T) values for regression, (L) 0/1 labels
/// for multi-label classification. The data loader gathers them into
/// <see cref="HostBatch.Targets"/>; tasks that train on values (<see cref="RegressionTask"/>,
/// <see cref="MultiLabelTask"/>) need a data set of this kind.
/// </summary>
/// <remarks>
/// A data set of values and no classes has <see cref="IDataset.Classes"/> 0 and gathers labels of 0.
/// One of class labels only may have an empty target shape (length 0): its batches carry no targets.
/// </remarks>
public interface ITargetDataset : IDataset
{
    /// <summary>Per-sample target shape, without the batch: (T) regression values or (L) labels.</summary>
    Shape TargetShape { get; }

    /// <summary>Copies the targets of the samples at <paramref name="indices"/> into <paramref name="targets"/> (indices.Length x TargetShape.Length floats).</summary>
    /// <param name="indices">Sample indices in [0, Count).</param>
    /// <param name="targets">Destination targets.</param>
    void GatherTargets(ReadOnlySpan<int> indices, Span<float> targets);
}

/// <summary>One batch on the host, ready to upload: <see cref="Count"/> samples in order.</summary>
/// <param name="Index">Its position in the epoch (0-based).</param>
/// <param name="Count">Samples in it (the last batch may be short unless drop-last).</param>
/// <param name="Shape">Feature shape with the batch first, (Count, ...SampleShape).</param>
/// <param name="X">Features, Count x SampleShape.Length floats.</param>
/// <param name="Labels">Labels, Count ints.</param>
public sealed record HostBatch(int Index, int Count, Shape Shape, float[] X, int[] Labels)
{
    /// <summary>Float targets, Count x TargetShape.Length floats, when the data set is an <see cref="ITargetDataset"/>; else null.</summary>
    public float[]? Targets { get; init; }

    /// <summary>The shape of <see cref="Targets"/> with the batch first, (Count, ...TargetShape), or null.</summary>
    public Shape? TargetShape { get; init; }
}
