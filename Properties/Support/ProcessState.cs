namespace IlgpuTrain.Properties.Support;

/// <summary>
/// Tests that change process-wide state (environment variables, <see cref="Console"/>'s writers)
/// run in this collection, which xunit runs on its own after the parallel ones, so no other test
/// sees the change. Everything else runs in parallel.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ProcessState
{
    /// <summary>The collection's name, for <c>[Collection(ProcessState.Name)]</c>.</summary>
    public const string Name = "Process-wide state";
}
