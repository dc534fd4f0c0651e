using System.Globalization;

namespace IlgpuTrain.Training.Distributed;

/// <summary>
/// Where this process sits in a distributed launch, as its launcher says through the environment:
/// Open MPI's mpirun (OMPI_COMM_WORLD_RANK, OMPI_COMM_WORLD_SIZE, OMPI_COMM_WORLD_LOCAL_RANK),
/// a PMI launcher such as srun or MPICH's hydra (PMI_RANK, PMI_SIZE, MPI_LOCALRANKID), or
/// torchrun's convention (RANK, WORLD_SIZE, LOCAL_RANK), looked up in that order.
/// </summary>
/// <param name="Rank">This process's rank, 0 to WorldSize − 1.</param>
/// <param name="WorldSize">The number of processes.</param>
/// <param name="LocalRank">Its rank among the processes of its node (which GPU it takes).</param>
/// <param name="Source">The variables it was read from, for messages ("OMPI_COMM_WORLD_*").</param>
public sealed record LaunchEnvironment(int Rank, int WorldSize, int LocalRank, string Source)
{
    private static readonly (string Rank, string Size, string Local, string Source)[] Conventions =
    [
        ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_*"),
        ("PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", "PMI_*"),
        ("RANK", "WORLD_SIZE", "LOCAL_RANK", "RANK/WORLD_SIZE/LOCAL_RANK"),
    ];

    /// <summary>The launch this process is part of, from its own environment, or null when no launcher set one.</summary>
    /// <returns>The launch, or null.</returns>
    public static LaunchEnvironment? FromEnvironment() => Parse(Environment.GetEnvironmentVariable);

    /// <summary>
    /// Reads a launch from <paramref name="variable"/>: the first convention whose rank variable is
    /// set. A missing local rank is taken to be the rank (one node).
    /// </summary>
    /// <param name="variable">Looks a variable up (null when unset).</param>
    /// <returns>The launch, or null when none of the rank variables is set.</returns>
    /// <exception cref="DistributedException">A variable is not a number, a size is missing, or the rank is out of range.</exception>
    public static LaunchEnvironment? Parse(Func<string, string?> variable)
    {
        ArgumentNullException.ThrowIfNull(variable);
        foreach (var (rankName, sizeName, localName, source) in Conventions)
        {
            string? rankText = variable(rankName);
            if (string.IsNullOrWhiteSpace(rankText))
                continue;
            int rank = Number(rankName, rankText, 0);
            string? sizeText = variable(sizeName);
            if (string.IsNullOrWhiteSpace(sizeText))
                throw new DistributedException($"Distributed launch: {rankName} is set ({rankText}) but {sizeName} is not; launch with mpirun -np N (or set both, as torchrun does).");
            int size = Number(sizeName, sizeText, 1);
            if (rank >= size)
                throw new DistributedException($"Distributed launch: {rankName}={rank} is not below {sizeName}={size}; ranks run from 0 to {size - 1}.");
            string? localText = variable(localName);
            int local = string.IsNullOrWhiteSpace(localText) ? rank : Number(localName, localText, 0);
            return new LaunchEnvironment(rank, size, local, source);
        }

        return null;
    }

    private static int Number(string name, string text, int least)
    {
        if (!int.TryParse(text.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out int value) || value < least)
            throw new DistributedException($"Distributed launch: {name}={text} is not a whole number of at least {least}; unset it or let the launcher (mpirun, torchrun) set it.");
        return value;
    }
}
