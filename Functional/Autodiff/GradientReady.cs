namespace IlgpuTrain.Functional;

/// <summary>
/// Told, during a backward (<see cref="GradOptions.GradientReady"/>), when each Float32 parameter's
/// slot of the gradient tree holds its final value, so that work on it (an all-reduce of a bucket of
/// gradients across processes, as PyTorch's DistributedDataParallel hooks do) can start while the
/// backward goes on with the other parameters.
/// </summary>
/// <remarks>
/// <para>A parameter's gradient is final after the last operation of the reverse sweep that writes
/// it (the earliest recorded operation that reads the parameter). Parameters that receive no
/// gradient (frozen, never read by the forward, or with no path to the loss) are zero-filled at
/// that point, before they are reported, so their slots never change afterwards.</para>
/// <para>The slot's values are final in the device's stream order: kernels that write them may
/// still be queued. Synchronize the device (or enqueue on its stream) before reading them.</para>
/// <para>Every Float32 parameter of the tree with at least one element is reported exactly once,
/// in an order that depends only on the recorded graph (the same on every process that records the
/// same model), before the differentiation returns.</para>
/// </remarks>
public interface IGradientReadyObserver
{
    /// <summary>The gradient slot of <paramref name="parameter"/> (its offset and length in the tree's <see cref="ParamTree.Flat32"/> buffer) is final.</summary>
    /// <param name="gradients">The gradient tree being written (the one the differentiation returns).</param>
    /// <param name="parameter">The parameter, from the gradient tree's layout.</param>
    void Ready(ParamTree gradients, ParamInfo parameter);

    /// <summary>Called between the operations of the backward, to drive work started by <see cref="Ready"/> (such as MPI's progress).</summary>
    void Progress();
}
