package debug

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// Metrics in Prometheus' text exposition format (version 0.0.4), written by
// hand: the format is a few lines per family, and the library stays free of
// client_golang and its dependency tree (see docs/debugging.md).

// MetricType is the TYPE of a metric family.
type MetricType string

// Metric types of the text format.
const (
	MetricCounter   MetricType = "counter"
	MetricGauge     MetricType = "gauge"
	MetricHistogram MetricType = "histogram"
	MetricSummary   MetricType = "summary"
)

// Sample is one line of a metric family: a value with labels. For a
// histogram family, use Buckets (upper bound -> cumulative count), Count and
// Sum instead of Value; for a summary, Quantiles, Count and Sum.
type Sample struct {
	Labels    [][2]string
	Value     float64
	Buckets   []Bucket
	Quantiles []Quantile
	Count     uint64
	Sum       float64
}

// Quantile is one quantile of a summary: the value at rank Q (0 to 1).
type Quantile struct {
	Q     float64
	Value float64
}

// Bucket is one cumulative histogram bucket: values <= Le.
type Bucket struct {
	Le    float64
	Count uint64
}

// Family is a metric family: its name, help, type and samples.
type Family struct {
	Name    string
	Help    string
	Type    MetricType
	Samples []Sample
}

// MetricsSource returns extra metric families, e.g. a transport's frames,
// bytes and connections (see Server.AddMetrics). It is called on every
// scrape, from the scraping goroutine.
type MetricsSource func() []Family

// latencyBounds are the histogram buckets exported for handler latencies,
// in seconds: powers of two of nanoseconds from 256 ns to ~34 s, which are
// exact bucket boundaries of Histogram.
var latencyBounds = func() []int64 {
	var b []int64
	for e := 8; e <= 35; e++ {
		b = append(b, int64(1)<<e-1)
	}
	return b
}()

// Families returns the recorder's metrics: per loop queue depth, actors,
// events, errors, crashes, restarts, drops and the handler latency
// histogram, plus the crash log's total.
func (r *Recorder) Families() []Family {
	stats := r.Stats()
	fam := func(name, help string, t MetricType, val func(s *LoopStats) float64) Family {
		f := Family{Name: name, Help: help, Type: t}
		for i := range stats {
			f.Samples = append(f.Samples, Sample{Labels: [][2]string{{"loop", strconv.Itoa(stats[i].Loop)}}, Value: val(&stats[i])})
		}
		return f
	}
	fs := []Family{
		fam("actord_loop_queue_depth", "Events waiting on the loop (inbound, control and local queues).", MetricGauge,
			func(s *LoopStats) float64 { return float64(s.QueueDepth()) }),
		fam("actord_loop_inbound_queue", "Events in the loop's inbound queue.", MetricGauge,
			func(s *LoopStats) float64 { return float64(s.Inbound) }),
		fam("actord_loop_actors", "Live actors on the loop.", MetricGauge,
			func(s *LoopStats) float64 { return float64(s.Actors) }),
		fam("actord_loop_events_total", "Handler events processed by the loop (send, ask, call, timer, continuation).", MetricCounter,
			func(s *LoopStats) float64 { return float64(s.Handled) }),
		fam("actord_loop_handler_errors_total", "Handler events that returned an error or crashed.", MetricCounter,
			func(s *LoopStats) float64 { return float64(s.Errors) }),
		fam("actord_loop_crashes_total", "Actor crashes (panics) on the loop.", MetricCounter,
			func(s *LoopStats) float64 { return float64(s.Crashes) }),
		fam("actord_loop_restarts_total", "Actors restarted in place on the loop.", MetricCounter,
			func(s *LoopStats) float64 { return float64(s.Restarts) }),
		fam("actord_loop_dropped_total", "Messages that could not be delivered on the loop.", MetricCounter,
			func(s *LoopStats) float64 { return float64(s.Dropped) }),
		fam("actord_loop_recorded_events_total", "Events recorded in the loop's debug ring (all kinds).", MetricCounter,
			func(s *LoopStats) float64 { return float64(s.Recorded) }),
	}
	lat := Family{Name: "actord_loop_handler_seconds", Help: "Handler and continuation run time.", Type: MetricHistogram}
	for i := range stats {
		h := &stats[i].Latency
		s := Sample{Labels: [][2]string{{"loop", strconv.Itoa(stats[i].Loop)}}, Count: h.Count(), Sum: float64(h.Sum()) / 1e9}
		for _, b := range latencyBounds {
			s.Buckets = append(s.Buckets, Bucket{Le: float64(b+1) / 1e9, Count: h.CountBelow(b)})
		}
		lat.Samples = append(lat.Samples, s)
	}
	fs = append(fs, lat)
	_, total := r.crashes.snapshot()
	fs = append(fs, Family{Name: "actord_crash_log_total", Help: "Crashes recorded in the crash log since start.", Type: MetricCounter,
		Samples: []Sample{{Value: float64(total)}}})
	return fs
}

// WriteMetrics writes families in Prometheus' text format.
func WriteMetrics(w io.Writer, fams []Family) error {
	bw := bufio.NewWriter(w)
	for _, f := range fams {
		fmt.Fprintf(bw, "# HELP %s %s\n# TYPE %s %s\n", f.Name, escapeHelp(f.Help), f.Name, f.Type)
		for _, s := range f.Samples {
			if f.Type == MetricHistogram {
				for _, b := range s.Buckets {
					writeSample(bw, f.Name+"_bucket", append(s.Labels[:len(s.Labels):len(s.Labels)], [2]string{"le", formatFloat(b.Le)}), float64(b.Count))
				}
				writeSample(bw, f.Name+"_bucket", append(s.Labels[:len(s.Labels):len(s.Labels)], [2]string{"le", "+Inf"}), float64(s.Count))
				writeSample(bw, f.Name+"_sum", s.Labels, s.Sum)
				writeSample(bw, f.Name+"_count", s.Labels, float64(s.Count))
				continue
			}
			if f.Type == MetricSummary {
				for _, q := range s.Quantiles {
					writeSample(bw, f.Name, append(s.Labels[:len(s.Labels):len(s.Labels)], [2]string{"quantile", formatFloat(q.Q)}), q.Value)
				}
				writeSample(bw, f.Name+"_sum", s.Labels, s.Sum)
				writeSample(bw, f.Name+"_count", s.Labels, float64(s.Count))
				continue
			}
			writeSample(bw, f.Name, s.Labels, s.Value)
		}
	}
	return bw.Flush()
}

func writeSample(w *bufio.Writer, name string, labels [][2]string, v float64) {
	w.WriteString(name)
	if len(labels) > 0 {
		w.WriteByte('{')
		for i, l := range labels {
			if i > 0 {
				w.WriteByte(',')
			}
			w.WriteString(l[0])
			w.WriteString(`="`)
			w.WriteString(escapeLabel(l[1]))
			w.WriteByte('"')
		}
		w.WriteByte('}')
	}
	w.WriteByte(' ')
	w.WriteString(formatFloat(v))
	w.WriteByte('\n')
}

func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

func escapeHelp(s string) string  { return helpEscaper.Replace(s) }
func escapeLabel(s string) string { return labelEscaper.Replace(s) }
