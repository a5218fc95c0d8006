package org.poststelle.oscipeer;

import java.util.List;
import java.util.Map;

/** Json writes the peer's results: maps, lists, strings, numbers, booleans and null, nothing else. */
final class Json {
  private Json() {}

  static String write(Object v) {
    StringBuilder b = new StringBuilder();
    write(b, v, 0);
    b.append('\n');
    return b.toString();
  }

  private static void write(StringBuilder b, Object v, int depth) {
    if (v == null) {
      b.append("null");
    } else if (v instanceof String) {
      quote(b, (String) v);
    } else if (v instanceof Number || v instanceof Boolean) {
      b.append(v);
    } else if (v instanceof Map) {
      writeMap(b, (Map<?, ?>) v, depth);
    } else if (v instanceof List) {
      writeList(b, (List<?>) v, depth);
    } else {
      quote(b, v.toString());
    }
  }

  private static void writeMap(StringBuilder b, Map<?, ?> m, int depth) {
    if (m.isEmpty()) {
      b.append("{}");
      return;
    }
    b.append("{");
    boolean first = true;
    for (Map.Entry<?, ?> e : m.entrySet()) {
      b.append(first ? "\n" : ",\n");
      first = false;
      indent(b, depth + 1);
      quote(b, e.getKey().toString());
      b.append(": ");
      write(b, e.getValue(), depth + 1);
    }
    b.append("\n");
    indent(b, depth);
    b.append("}");
  }

  private static void writeList(StringBuilder b, List<?> l, int depth) {
    if (l.isEmpty()) {
      b.append("[]");
      return;
    }
    b.append("[");
    boolean first = true;
    for (Object o : l) {
      b.append(first ? "\n" : ",\n");
      first = false;
      indent(b, depth + 1);
      write(b, o, depth + 1);
    }
    b.append("\n");
    indent(b, depth);
    b.append("]");
  }

  private static void indent(StringBuilder b, int depth) {
    for (int i = 0; i < depth; i++) b.append("  ");
  }

  private static void quote(StringBuilder b, String s) {
    b.append('"');
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      switch (c) {
        case '"': b.append("\\\""); break;
        case '\\': b.append("\\\\"); break;
        case '\n': b.append("\\n"); break;
        case '\r': b.append("\\r"); break;
        case '\t': b.append("\\t"); break;
        default:
          if (c < 0x20) b.append(String.format("\\u%04x", (int) c));
          else b.append(c);
      }
    }
    b.append('"');
  }
}
