package org.poststelle.oscipeer;

import java.io.InputStream;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;

/**
 * PatternStream is attachment k's test data: byte i is (i + 31k) mod 251. A prime period keeps
 * the data from lining up with block or chunk sizes, and the Go side recomputes it without files.
 */
final class PatternStream extends InputStream {
  private final long length;
  private final int k;
  private long pos;

  PatternStream(long length, int k) {
    this.length = length;
    this.k = k;
  }

  static int at(long i, int k) {
    return (int) ((i + 31L * k) % 251);
  }

  @Override
  public int read() {
    if (pos >= length) return -1;
    return at(pos++, k);
  }

  @Override
  public int read(byte[] b, int off, int len) {
    if (pos >= length) return -1;
    int n = (int) Math.min(len, length - pos);
    for (int j = 0; j < n; j++) b[off + j] = (byte) at(pos++, k);
    return n;
  }

  static byte[] sha256(long length, int k) {
    try {
      MessageDigest d = MessageDigest.getInstance("SHA-256");
      byte[] buf = new byte[64 * 1024];
      PatternStream s = new PatternStream(length, k);
      int n;
      while ((n = s.read(buf, 0, buf.length)) > 0) d.update(buf, 0, n);
      return d.digest();
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }
}
