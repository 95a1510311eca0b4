package pluginhost

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"time"

	"google.golang.org/protobuf/types/known/structpb"
)

// maxExactInt is the largest integer a protobuf number (a double) holds
// exactly.
const maxExactInt = 1 << 53

// configStruct converts a destination's config block (YAML decoded into maps,
// lists and scalars) to the protobuf Struct sent to the plugin. Errors name
// the offending field.
func configStruct(cfg map[string]any) (*structpb.Struct, error) {
	s := &structpb.Struct{Fields: make(map[string]*structpb.Value, len(cfg))}
	for _, k := range sortedKeys(cfg) {
		pv, err := toValue(k, cfg[k])
		if err != nil {
			return nil, err
		}
		s.Fields[k] = pv
	}
	return s, nil
}

func toValue(path string, v any) (*structpb.Value, error) {
	switch x := v.(type) {
	case nil:
		return structpb.NewNullValue(), nil
	case string:
		return structpb.NewStringValue(x), nil
	case bool:
		return structpb.NewBoolValue(x), nil
	case int:
		return intValue(path, int64(x))
	case int8:
		return intValue(path, int64(x))
	case int16:
		return intValue(path, int64(x))
	case int32:
		return intValue(path, int64(x))
	case int64:
		return intValue(path, x)
	case uint:
		return uintValue(path, uint64(x))
	case uint8:
		return uintValue(path, uint64(x))
	case uint16:
		return uintValue(path, uint64(x))
	case uint32:
		return uintValue(path, uint64(x))
	case uint64:
		return uintValue(path, x)
	case float32:
		return structpb.NewNumberValue(float64(x)), nil
	case float64:
		return structpb.NewNumberValue(x), nil
	case time.Time:
		return structpb.NewStringValue(x.UTC().Format(time.RFC3339Nano)), nil
	case time.Duration:
		return structpb.NewStringValue(x.String()), nil
	case []any:
		l := &structpb.ListValue{Values: make([]*structpb.Value, len(x))}
		for i, e := range x {
			pv, err := toValue(path+"["+strconv.Itoa(i)+"]", e)
			if err != nil {
				return nil, err
			}
			l.Values[i] = pv
		}
		return structpb.NewListValue(l), nil
	case map[string]any:
		s := &structpb.Struct{Fields: make(map[string]*structpb.Value, len(x))}
		for _, k := range sortedKeys(x) {
			pv, err := toValue(path+"."+k, x[k])
			if err != nil {
				return nil, err
			}
			s.Fields[k] = pv
		}
		return structpb.NewStructValue(s), nil
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[fmt.Sprint(k)] = e
		}
		return toValue(path, m)
	default:
		// Typed slices, maps and structs: take their JSON shape.
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("config field %s: cannot pass a %T to a plugin: %w", path, v, err)
		}
		var generic any
		if err := json.Unmarshal(b, &generic); err != nil {
			return nil, fmt.Errorf("config field %s: cannot pass a %T to a plugin: %w", path, v, err)
		}
		return toValue(path, generic)
	}
}

func intValue(path string, i int64) (*structpb.Value, error) {
	if i > maxExactInt || i < -maxExactInt {
		return nil, fmt.Errorf("config field %s: %d is too large to pass exactly; quote it as a string", path, i)
	}
	return structpb.NewNumberValue(float64(i)), nil
}

func uintValue(path string, u uint64) (*structpb.Value, error) {
	if u > maxExactInt {
		return nil, fmt.Errorf("config field %s: %d is too large to pass exactly; quote it as a string", path, u)
	}
	return structpb.NewNumberValue(float64(u)), nil
}

// sortedKeys makes the first error reported deterministic.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
