package remotewrite

import (
	"fmt"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

// Encode marshals series into a snappy-compressed request body of the given protocol and
// returns it with the number of samples it holds. Series without samples are left out. Metric
// metadata (type and help) is sent once per metric name in RW 1.0 and with every series in
// RW 2.0, as each protocol expects. Encode does not retain series.
func Encode(p Protocol, series []Series) ([]byte, int, error) {
	var (
		raw []byte
		n   int
		err error
	)
	switch p {
	case V1:
		raw, n, err = encodeV1(series)
	case V2:
		raw, n, err = encodeV2(series)
	default:
		return nil, 0, fmt.Errorf("encode: unknown protocol %d", p)
	}
	if err != nil {
		return nil, 0, err
	}
	return snappy.Encode(nil, raw), n, nil
}

func encodeV1(series []Series) ([]byte, int, error) {
	req := prompb.WriteRequest{Timeseries: make([]prompb.TimeSeries, 0, len(series))}
	seen := map[string]bool{}
	n := 0
	for i := range series {
		s := &series[i]
		if len(s.Samples) == 0 {
			continue
		}
		ts := prompb.TimeSeries{
			Labels:  make([]prompb.Label, len(s.Labels)),
			Samples: make([]prompb.Sample, len(s.Samples)),
		}
		for j, l := range s.Labels {
			ts.Labels[j] = prompb.Label{Name: l.Name, Value: l.Value}
		}
		for j, smp := range s.Samples {
			ts.Samples[j] = prompb.Sample{Timestamp: smp.T, Value: smp.V}
		}
		n += len(s.Samples)
		req.Timeseries = append(req.Timeseries, ts)
		if name := s.Name(); name != "" && !seen[name] && (s.Type != Unknown || s.Help != "") {
			seen[name] = true
			req.Metadata = append(req.Metadata, prompb.MetricMetadata{
				Type:             v1Type(s.Type),
				MetricFamilyName: name,
				Help:             s.Help,
			})
		}
	}
	raw, err := req.Marshal()
	if err != nil {
		return nil, 0, fmt.Errorf("encode RW 1.0: %w", err)
	}
	return raw, n, nil
}

func encodeV2(series []Series) ([]byte, int, error) {
	st := writev2.NewSymbolTable()
	req := writev2.Request{Timeseries: make([]writev2.TimeSeries, 0, len(series))}
	n := 0
	for i := range series {
		s := &series[i]
		if len(s.Samples) == 0 {
			continue
		}
		refs := make([]uint32, 0, 2*len(s.Labels))
		for _, l := range s.Labels {
			refs = append(refs, st.Symbolize(l.Name), st.Symbolize(l.Value))
		}
		ts := writev2.TimeSeries{
			LabelsRefs: refs,
			Samples:    make([]writev2.Sample, len(s.Samples)),
			Metadata:   writev2.Metadata{Type: v2Type(s.Type)},
		}
		if s.Help != "" {
			ts.Metadata.HelpRef = st.Symbolize(s.Help)
		}
		for j, smp := range s.Samples {
			ts.Samples[j] = writev2.Sample{Timestamp: smp.T, Value: smp.V}
		}
		n += len(s.Samples)
		req.Timeseries = append(req.Timeseries, ts)
	}
	req.Symbols = st.Symbols()
	raw, err := req.Marshal()
	if err != nil {
		return nil, 0, fmt.Errorf("encode RW 2.0: %w", err)
	}
	return raw, n, nil
}

func v1Type(t MetricType) prompb.MetricMetadata_MetricType {
	switch t {
	case Counter:
		return prompb.MetricMetadata_COUNTER
	case Gauge:
		return prompb.MetricMetadata_GAUGE
	case Info:
		return prompb.MetricMetadata_INFO
	}
	return prompb.MetricMetadata_UNKNOWN
}

func v2Type(t MetricType) writev2.Metadata_MetricType {
	switch t {
	case Counter:
		return writev2.Metadata_METRIC_TYPE_COUNTER
	case Gauge:
		return writev2.Metadata_METRIC_TYPE_GAUGE
	case Info:
		return writev2.Metadata_METRIC_TYPE_INFO
	}
	return writev2.Metadata_METRIC_TYPE_UNSPECIFIED
}
