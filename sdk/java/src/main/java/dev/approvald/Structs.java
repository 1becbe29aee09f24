package dev.approvald;

import com.google.protobuf.ListValue;
import com.google.protobuf.NullValue;
import com.google.protobuf.Struct;
import com.google.protobuf.Value;
import java.lang.reflect.Array;
import java.util.Map;

/** JSON-like Java values to google.protobuf.Struct, for an approval's context. */
final class Structs {
  private Structs() {}

  static Struct toStruct(Map<?, ?> map) {
    Struct.Builder struct = Struct.newBuilder();
    for (Map.Entry<?, ?> entry : map.entrySet()) {
      if (!(entry.getKey() instanceof String key)) {
        throw new IllegalArgumentException("context keys must be strings: " + entry.getKey());
      }
      struct.putFields(key, toValue(entry.getValue()));
    }
    return struct.build();
  }

  static Value toValue(Object v) {
    if (v == null) {
      return Value.newBuilder().setNullValue(NullValue.NULL_VALUE).build();
    } else if (v instanceof Value value) {
      return value;
    } else if (v instanceof Boolean b) {
      return Value.newBuilder().setBoolValue(b).build();
    } else if (v instanceof Number n) {
      return Value.newBuilder().setNumberValue(n.doubleValue()).build();
    } else if (v instanceof CharSequence || v instanceof Enum<?>) {
      return Value.newBuilder().setStringValue(v.toString()).build();
    } else if (v instanceof Map<?, ?> map) {
      return Value.newBuilder().setStructValue(toStruct(map)).build();
    } else if (v instanceof Iterable<?> items) {
      ListValue.Builder list = ListValue.newBuilder();
      items.forEach(item -> list.addValues(toValue(item)));
      return Value.newBuilder().setListValue(list).build();
    } else if (v.getClass().isArray()) {
      ListValue.Builder list = ListValue.newBuilder();
      for (int i = 0; i < Array.getLength(v); i++) {
        list.addValues(toValue(Array.get(v, i)));
      }
      return Value.newBuilder().setListValue(list).build();
    }
    throw new IllegalArgumentException("context values must be JSON-like, not " + v.getClass());
  }
}
