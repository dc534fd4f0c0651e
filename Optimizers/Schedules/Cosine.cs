namespace IlgpuTrain.Optimizers;

// Cosine annealing (Loshchilov and Hutter, SGDR, 2017): one half cosine from base to eta_min over
// T_max updates (CosineAnnealingLR), or repeated with restarts whose period grows by T_mult
// (CosineAnnealingWarmRestarts). Both use PyTorch's closed forms.

/// <summary>
/// lr(t) = η_min + (base − η_min)·(1 + cos(π·t/T_max))/2: PyTorch
/// <c>torch.optim.lr_scheduler.CosineAnnealingLR</c> (its closed form).
/// </summary>
/// <remarks>
/// <para>PyTorch's schedule is periodic: past T_max it climbs back to base at 2·T_max, and so on.</para>
/// <para><paramref name="Clamped"/> = true holds η_min from T_max on instead, as Optax's
/// <c>cosine_decay_schedule(init_value=base, decay_steps=T_max, alpha=η_min/base)</c>.</para>
/// </remarks>
/// <param name="BaseLr">lr(0) (η_max), finite and at least 0.</param>
/// <param name="TMax">Updates from base to η_min (PyTorch T_max), at least 1.</param>
/// <param name="EtaMin">The lowest learning rate (PyTorch eta_min, default 0), finite and at least 0.</param>
/// <param name="Clamped">Stay at η_min past T_max (Optax) rather than cycle back up (PyTorch, the default).</param>
public sealed record CosineAnnealingLR(double BaseLr, int TMax, double EtaMin = 0, bool Clamped = false) : Schedule
{
    private readonly bool _checked = Check(BaseLr, TMax, EtaMin);

    /// <inheritdoc/>
    public override double At(long step)
    {
        CheckStep(step);
        Check(BaseLr, TMax, EtaMin);
        long t = Clamped ? Math.Min(step, TMax) : step;
        return HalfCosine(BaseLr, EtaMin, t, TMax);
    }

    private static bool Check(double baseLr, int tMax, double etaMin)
    {
        RequireRate(baseLr, nameof(BaseLr), "CosineAnnealingLR: the base learning rate (PyTorch lr)");
        Require(tMax >= 1, nameof(TMax), tMax, "CosineAnnealingLR: T_max must be at least 1");
        RequireRate(etaMin, nameof(EtaMin), "CosineAnnealingLR: eta_min");
        return true;
    }
}

/// <summary>
/// SGDR: cosine annealing restarted every T_i updates, T_0 first and each period T_mult times the
/// last: PyTorch <c>torch.optim.lr_scheduler.CosineAnnealingWarmRestarts</c> stepped once per update.
/// </summary>
/// <remarks>
/// <para>T_cur = updates since the last restart, T_i = the current period:</para>
/// <para>lr(t) = η_min + (base − η_min)·(1 + cos(π·T_cur/T_i))/2</para>
/// <para>Restarts at t = T_0, T_0 + T_0·T_mult, T_0(1 + T_mult + T_mult²), …, where lr jumps back to base.</para>
/// </remarks>
/// <param name="BaseLr">lr(0), finite and at least 0.</param>
/// <param name="T0">Updates before the first restart (PyTorch T_0), at least 1.</param>
/// <param name="TMult">Growth of the period after each restart (PyTorch T_mult, default 1), at least 1.</param>
/// <param name="EtaMin">The lowest learning rate (PyTorch eta_min, default 0), finite and at least 0.</param>
public sealed record CosineAnnealingWarmRestarts(double BaseLr, int T0, int TMult = 1, double EtaMin = 0) : Schedule
{
    private readonly bool _checked = Check(BaseLr, T0, TMult, EtaMin);

    /// <inheritdoc/>
    public override double At(long step)
    {
        CheckStep(step);
        Check(BaseLr, T0, TMult, EtaMin);
        long period = T0, sinceRestart = step % T0;
        if (TMult > 1)
        {
            // Periods grow geometrically, so this runs at most about 63 times.
            sinceRestart = step;
            while (sinceRestart >= period)
            {
                sinceRestart -= period;
                period = period > long.MaxValue / TMult ? long.MaxValue : period * TMult;
            }
        }
        return HalfCosine(BaseLr, EtaMin, sinceRestart, period);
    }

    private static bool Check(double baseLr, int t0, int tMult, double etaMin)
    {
        RequireRate(baseLr, nameof(BaseLr), "CosineAnnealingWarmRestarts: the base learning rate (PyTorch lr)");
        Require(t0 >= 1, nameof(T0), t0, "CosineAnnealingWarmRestarts: T_0 must be at least 1");
        Require(tMult >= 1, nameof(TMult), tMult, "CosineAnnealingWarmRestarts: T_mult must be at least 1");
        RequireRate(etaMin, nameof(EtaMin), "CosineAnnealingWarmRestarts: eta_min");
        return true;
    }
}
