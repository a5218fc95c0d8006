package org.poststelle.dssoracle;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;

/**
 * Drops one expected line from stderr: the JDK's XML parser, which DSS runs
 * without an error handler, prints "[Fatal Error] :L:C: DOCTYPE is disallowed
 * ..." before it throws for a document with a DOCTYPE (the corpus' XXE probe).
 * DSS's refusal, with the same text, is already recorded in the job's JSON, so
 * the line only makes a passing run look broken. Every other line, including
 * every other parser error, passes through unchanged.
 */
final class DoctypeNoise extends OutputStream {
    private final OutputStream next;
    private final ByteArrayOutputStream line = new ByteArrayOutputStream();

    private DoctypeNoise(OutputStream next) {
        this.next = next;
    }

    /** Replaces System.err with a stream that drops the expected line. */
    static void install() {
        System.setErr(new PrintStream(new DoctypeNoise(System.err), true, StandardCharsets.UTF_8));
    }

    static boolean expected(String line) {
        return line.startsWith("[Fatal Error] ") && line.contains("DOCTYPE is disallowed");
    }

    @Override
    public synchronized void write(int b) throws IOException {
        line.write(b);
        if (b == '\n') {
            emit();
        }
    }

    @Override
    public synchronized void flush() throws IOException {
        // The parser prints whole lines; a partial one is someone else's and goes out now.
        emit();
        next.flush();
    }

    @Override
    public synchronized void close() throws IOException {
        flush();
        next.close();
    }

    private void emit() throws IOException {
        if (line.size() == 0) {
            return;
        }
        if (!expected(line.toString(StandardCharsets.UTF_8))) {
            line.writeTo(next);
        }
        line.reset();
    }
}
