package agentv1

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// MarshalPayload encodes a command payload or result message as the JSON the
// protocol carries in Command.payload, CommandCompleted.result and
// CommandFailed.details: proto3 JSON with the field names as declared.
func MarshalPayload(m proto.Message) ([]byte, error) {
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", m.ProtoReflect().Descriptor().Name(), err)
	}
	return b, nil
}

// UnmarshalPayload decodes such JSON into m. Unknown fields are ignored so a
// newer sender may add some; an empty b leaves m empty.
func UnmarshalPayload(b []byte, m proto.Message) error {
	proto.Reset(m)
	if len(b) == 0 {
		return nil
	}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(b, m); err != nil {
		return fmt.Errorf("decode %s: %w", m.ProtoReflect().Descriptor().Name(), err)
	}
	return nil
}
