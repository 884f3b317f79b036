package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// MergePatch applies a JSON merge patch (RFC 7396) to doc, as PATCH /config does: objects merge
// key by key, null deletes a key, anything else replaces. Both must be JSON objects. An empty or
// null doc is an empty object.
//
// Numbers are kept as written (json.Number), not turned into float64: 4611686018427387904 stays
// that integer, so that the bounds check sees and names the value the client sent, and 1e400
// reaches it too instead of failing the decoding without naming its key.
func MergePatch(doc, patch []byte) ([]byte, error) {
	var d, p any
	if len(doc) > 0 {
		if err := unmarshalNumbers(doc, &d); err != nil {
			return nil, fmt.Errorf("merge patch: current value is not JSON: %w", err)
		}
	}
	if d == nil {
		d = map[string]any{}
	}
	if err := unmarshalNumbers(patch, &p); err != nil {
		return nil, fmt.Errorf("merge patch: patch is not JSON: %w", err)
	}
	if _, ok := p.(map[string]any); !ok {
		return nil, fmt.Errorf("merge patch: patch must be a JSON object, got %s", jsonKind(p))
	}
	if _, ok := d.(map[string]any); !ok {
		return nil, fmt.Errorf("merge patch: current value must be a JSON object, got %s", jsonKind(d))
	}
	out, err := json.Marshal(mergeValue(d, p))
	if err != nil {
		return nil, fmt.Errorf("merge patch: %w", err)
	}
	return out, nil
}

// unmarshalNumbers is json.Unmarshal with numbers decoded as json.Number.
func unmarshalNumbers(b []byte, v *any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the JSON value")
	}
	return nil
}

func mergeValue(target, patch any) any {
	pm, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	tm, ok := target.(map[string]any)
	if !ok {
		tm = map[string]any{}
	}
	for k, v := range pm {
		if v == nil {
			delete(tm, k)
			continue
		}
		tm[k] = mergeValue(tm[k], v)
	}
	return tm
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case []any:
		return "an array"
	case string:
		return "a string"
	case float64, json.Number:
		return "a number"
	case bool:
		return "a boolean"
	}
	return "an object"
}
