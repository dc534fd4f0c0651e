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

/// <summary>One batch on the host, ready to upload: <see cref="Count"/> samples in order.</summary>
/// <param name="Index">Its position in the epoch (0-based).</param>
/// <param name="Count">Samples in it (the last batch may be short unless drop-last).</param>
/// <param name="Shape">Feature shape with the batch first, (Count, ...SampleShape).</param>
/// <param name="X">Features, Count x SampleShape.Length floats.</param>
/// <param name="Labels">Labels, Count ints.</param>
public sealed record HostBatch(int Index, int Count, Shape Shape, float[] X, int[] Labels);
