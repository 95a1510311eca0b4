package plugins

import (
	"math"

	"google.golang.org/protobuf/types/known/structpb"
)

// maxExactInt is the largest integer a float64 (protobuf's number type) holds
// exactly.
const maxExactInt = 1 << 53

// structToMap turns the config the host sent back into the shapes YAML
// decoding produces: map[string]any, []any, string, bool, nil, and numbers as
// int when whole, else float64 (protobuf carries every number as a double).
func structToMap(s *structpb.Struct) map[string]any {
	m := make(map[string]any, len(s.GetFields()))
	for k, v := range s.GetFields() {
		m[k] = fromValue(v)
	}
	return m
}

func fromValue(v *structpb.Value) any {
	switch k := v.GetKind().(type) {
	case *structpb.Value_NumberValue:
		f := k.NumberValue
		if f == math.Trunc(f) && math.Abs(f) <= maxExactInt {
			return int(f)
		}
		return f
	case *structpb.Value_StringValue:
		return k.StringValue
	case *structpb.Value_BoolValue:
		return k.BoolValue
	case *structpb.Value_StructValue:
		return structToMap(k.StructValue)
	case *structpb.Value_ListValue:
		l := make([]any, len(k.ListValue.GetValues()))
		for i, e := range k.ListValue.GetValues() {
			l[i] = fromValue(e)
		}
		return l
	default: // null or unset
		return nil
	}
}
