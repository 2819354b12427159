package ingest

import "errors"

var (
	// ErrInvalid classifies data the sender must not retry: malformed, out of order, too old,
	// over a limit. Wrap it with the specific reason.
	ErrInvalid = errors.New("invalid data")
	// ErrOverloaded classifies a temporary refusal; the sender should retry later.
	ErrOverloaded = errors.New("overloaded")
)
