package pool

import "github.com/actord/actord/debug"

// Metrics returns the pool's counters as metric families labelled with the
// pool's name (actord_pool_*), for debug.Server.AddMetrics or any
// debug.MetricsSource. Safe from any goroutine.
func (p *Pool) Metrics() []debug.Family {
	st := p.Stats()
	lbl := [][2]string{{"pool", p.cfg.Name}}
	fam := func(name, help string, t debug.MetricType, v float64) debug.Family {
		return debug.Family{Name: "actord_pool_" + name, Help: help, Type: t, Samples: []debug.Sample{{Labels: lbl, Value: v}}}
	}
	c, g := debug.MetricCounter, debug.MetricGauge
	return []debug.Family{
		fam("workers", "Running workers.", g, float64(st.Workers)),
		fam("in_flight", "Messages in flight to the workers at the last sample.", g, float64(st.InFlight)),
		fam("routed_total", "Messages handed to a worker.", c, float64(st.Routed)),
		fam("held_total", "Messages that waited for the first worker to start.", c, float64(st.Held)),
		fam("refused_total", "Messages refused (pool full, no worker, no key, full loop queue).", c, float64(st.Refused)),
		fam("dropped_total", "Messages in flight to a worker when it ended (they failed).", c, float64(st.Dropped)),
		fam("crashes_total", "Worker crashes.", c, float64(st.Crashes)),
		fam("restarts_total", "Workers restarted in place after a crash.", c, float64(st.Restarts)),
		fam("started_total", "Workers started.", c, float64(st.Started)),
		fam("start_failed_total", "Worker starts that failed.", c, float64(st.StartFailed)),
		fam("retired_total", "Idle workers stopped by a scale down.", c, float64(st.Retired)),
		fam("scale_ups_total", "Scale-up events.", c, float64(st.ScaleUps)),
		fam("scale_downs_total", "Scale-down events.", c, float64(st.ScaleDowns)),
	}
}
