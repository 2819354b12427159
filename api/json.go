package api

import (
	"encoding/json"
	"net/http"
)

type response struct {
	Status    string `json:"status"`
	Data      any    `json:"data,omitempty"`
	ErrorType string `json:"errorType,omitempty"`
	Error     string `json:"error,omitempty"`
}

func successBody(data any) response { return response{Status: "success", Data: data} }

func errorBody(typ, msg string) response {
	return response{Status: "error", ErrorType: typ, Error: msg}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
