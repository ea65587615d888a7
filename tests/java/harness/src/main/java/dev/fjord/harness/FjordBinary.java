package dev.fjord.harness;

import java.nio.file.Files;
import java.nio.file.Path;

/** Where the {@code fjord} executable under test is. */
public final class FjordBinary {
    private FjordBinary() {}

    /**
     * $FJORD_BIN, else $CARGO_TARGET_DIR/debug/fjord, else ~/.cache/fjord/target/debug/fjord
     * (the order every Fjord harness uses). Fails with a message naming the places looked at.
     */
    public static Path path() {
        String explicit = System.getenv("FJORD_BIN");
        Path candidate;
        String how;
        if (explicit != null && !explicit.isEmpty()) {
            candidate = Path.of(explicit);
            how = "$FJORD_BIN";
        } else if (System.getenv("CARGO_TARGET_DIR") != null && !System.getenv("CARGO_TARGET_DIR").isEmpty()) {
            candidate = Path.of(System.getenv("CARGO_TARGET_DIR"), "debug", "fjord");
            how = "$CARGO_TARGET_DIR/debug/fjord";
        } else {
            candidate = Path.of(System.getProperty("user.home"), ".cache", "fjord", "target", "debug", "fjord");
            how = "~/.cache/fjord/target/debug/fjord (default cargo target dir)";
        }
        if (!Files.isExecutable(candidate)) {
            throw new IllegalStateException("the fjord binary is missing: no executable at " + candidate
                    + " (" + how + "). Build it with `cargo build --bin fjord` or set FJORD_BIN.");
        }
        return candidate.toAbsolutePath();
    }
}
