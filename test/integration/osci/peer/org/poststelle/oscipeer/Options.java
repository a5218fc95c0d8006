package org.poststelle.oscipeer;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/** Options is the parsed command line: a mode, then --name value pairs and bare --flags. */
final class Options {
  static final String USAGE = String.join("\n",
      "usage: Peer MODE [--name value | --flag]...",
      "modes: store, forward, fetch, processcard, passive, decrypt-bench",
      "common: --intermediary URL --certs DIR --password PW --signer P12 --decrypter P12",
      "        --sig-alg rsa-sha256|rsa-pss|rsa-sha512|rsa-pss-sha512|ecdsa-sha256",
      "        --intermediary-cipher CER --transport-alg ALG --no-transport-encryption --no-signatures",
      "        --message-id ID --dialog CONV,SEQ,CHALLENGE --keep-dialog --timeout-ms N",
      "        --store-out FILE --store-in FILE --out FILE --out-dir DIR",
      "store/forward: --addressee CER --subject S --content TEXT --attach BYTES (repeatable)",
      "        --container ID --inline NAME=FILE --attach-file NAME=FILE (both repeatable)",
      "        --enc-alg aes256-gcm|aes128-gcm|aes256-cbc|... --plain-content --unsigned-content",
      "forward: --recipient-url URL",
      "fetch: --reader P12",
      "passive: --listen 127.0.0.1:PORT --ready FILE --count N --out-dir DIR --feedback CODE",
      "decrypt-bench: --frames-dir DIR --threads 1,2 --warmup N --out FILE");

  private static final Set<String> FLAGS = Set.of("no-transport-encryption", "no-signatures", "keep-dialog",
      "plain-content", "unsigned-content");
  private static final Set<String> REPEATABLE = Set.of("attach", "inline", "attach-file");

  final String mode;
  private final Map<String, List<String>> values = new HashMap<>();

  private Options(String mode) {
    this.mode = mode;
  }

  static Options parse(String[] args) {
    if (args.length == 0) throw new IllegalArgumentException("no mode given");
    Options o = new Options(args[0]);
    for (int i = 1; i < args.length; i++) {
      String a = args[i];
      if (!a.startsWith("--")) throw new IllegalArgumentException("unexpected argument " + a);
      String name = a.substring(2);
      if (FLAGS.contains(name)) {
        o.values.computeIfAbsent(name, k -> new ArrayList<>()).add("true");
        continue;
      }
      if (i + 1 >= args.length) throw new IllegalArgumentException(a + " needs a value");
      List<String> l = o.values.computeIfAbsent(name, k -> new ArrayList<>());
      if (!l.isEmpty() && !REPEATABLE.contains(name)) throw new IllegalArgumentException(a + " given twice");
      l.add(args[++i]);
    }
    return o;
  }

  boolean has(String name) {
    return values.containsKey(name);
  }

  boolean flag(String name) {
    return values.containsKey(name);
  }

  String value(String name, String dflt) {
    List<String> l = values.get(name);
    return l == null ? dflt : l.get(0);
  }

  String require(String name) {
    String v = value(name, null);
    if (v == null) throw new IllegalArgumentException(mode + " needs --" + name);
    return v;
  }

  int intValue(String name, int dflt) {
    String v = value(name, null);
    return v == null ? dflt : Integer.parseInt(v);
  }

  List<String> values(String name) {
    return values.getOrDefault(name, List.of());
  }
}
