package org.poststelle.oscipeer;

import java.io.FilterOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.HttpURLConnection;
import java.net.URI;

import de.osci.osci12.extinterfaces.TransportI;

/**
 * UrlTransport posts each message over plain HTTP and remembers whether the request went out
 * completely, so a run that fails on the answer can still say that the library sent.
 */
final class UrlTransport implements TransportI {
  private final int timeoutMillis;
  private HttpURLConnection con;
  /** requests counts requests written completely, over every instance this one made. */
  final int[] requests;

  UrlTransport(int timeoutMillis) {
    this(timeoutMillis, new int[1]);
  }

  private UrlTransport(int timeoutMillis, int[] requests) {
    this.timeoutMillis = timeoutMillis;
    this.requests = requests;
  }

  @Override
  public String getVersion() {
    return "1";
  }

  @Override
  public String getVendor() {
    return "poststelle-oscipeer";
  }

  @Override
  public TransportI newInstance() {
    return new UrlTransport(timeoutMillis, requests);
  }

  @Override
  public InputStream getResponseStream() throws IOException {
    int status = con.getResponseCode();
    if (status >= 400) {
      throw new IOException("intermediary answered HTTP " + status);
    }
    return con.getInputStream();
  }

  @Override
  public boolean isOnline(URI uri) throws IOException {
    try {
      HttpURLConnection c = (HttpURLConnection) uri.toURL().openConnection();
      c.setConnectTimeout(timeoutMillis);
      c.connect();
      c.disconnect();
      return true;
    } catch (IOException e) {
      return false;
    }
  }

  @Override
  public long getContentLength() {
    return con == null ? -1 : con.getContentLengthLong();
  }

  @Override
  public OutputStream getConnection(URI uri, long length) throws IOException {
    if (!"http".equals(uri.getScheme())) {
      throw new IOException("only http URLs are supported, got " + uri);
    }
    con = (HttpURLConnection) uri.toURL().openConnection();
    con.setInstanceFollowRedirects(false);
    con.setConnectTimeout(timeoutMillis);
    con.setReadTimeout(timeoutMillis);
    con.setRequestMethod("POST");
    con.setRequestProperty("Content-Type", "text/xml; charset=UTF-8");
    con.setUseCaches(false);
    con.setDoOutput(true);
    // The library computes the exact length up front; streaming keeps large attachments out of memory.
    if (length >= 0) con.setFixedLengthStreamingMode(length);
    else con.setChunkedStreamingMode(64 * 1024);
    return new FilterOutputStream(con.getOutputStream()) {
      private boolean closed;

      @Override
      public void write(byte[] b, int off, int len) throws IOException {
        out.write(b, off, len);
      }

      @Override
      public void close() throws IOException {
        if (closed) return;
        closed = true;
        super.close();
        requests[0]++;
      }
    };
  }
}
