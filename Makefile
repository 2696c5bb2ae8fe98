# ewald — build with GNU make. See README.md for the two commands a
# newcomer types; `make help` lists the targets.
#
#   make            library (build/libewald.a, .so) and CLI (build/ewald)
#   make check      build and run the unit tests (SAN=1: ASan + UBSan)
#   make bench      build and run the benchmarks (figures, --json lines)
#   make demo       run the embedded end-to-end demo
#   make fuzz       build the libFuzzer targets (clang)
#   make install    PREFIX=/usr/local: lib, headers, CLI, ewald.pc
#   make MPI=1      build with MPI (mpicc) for multi-process runs

CC      ?= gcc
PREFIX  ?= /usr/local
SAN     ?= 0
MPI     ?= 0
ARCH    ?= -march=native

PKGS    := fftw3f fftw3 openblas hdf5-serial libpng libcjson
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

ifeq ($(SAN),1)
  BUILD   ?= build-san
  OPT     := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
  LDSAN   := -fsanitize=address,undefined
else
  BUILD   ?= build
  OPT     := -O3 -g $(ARCH)
  LDSAN   :=
endif

ifeq ($(MPI),1)
  CC      := mpicc
  MPIDEF  := -DEW_HAVE_MPI=1
endif

WARN    := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter
CFLAGS  += -std=c11 -D_POSIX_C_SOURCE=200809L $(OPT) $(WARN) -fopenmp -fPIC -Isrc $(PKG_CFLAGS) $(MPIDEF)
LDLIBS  += $(PKG_LIBS) -lfftw3f_omp -lfftw3_omp -lm -fopenmp $(LDSAN)

LIB_SRC   := $(sort $(filter-out src/cli/%,$(wildcard src/*/*.c)))
CLI_SRC   := $(sort $(wildcard src/cli/*.c))
TEST_SRC  := $(sort $(wildcard tests/test_*.c))
BENCH_SRC := $(sort $(wildcard bench/bench_*.c))
HEADERS   := $(sort $(wildcard src/*/*.h))

LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ   := $(CLI_SRC:%.c=$(BUILD)/%.o)
TEST_BIN  := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

.PHONY: all lib cli tests benches check check-mpi bench demo fuzz install clean help deps
.DEFAULT_GOAL := all

all: lib cli

lib: $(BUILD)/libewald.a $(BUILD)/libewald.so
cli: $(BUILD)/ewald

ifeq ($(V),1)
  Q :=
else
  Q := @
endif

$(BUILD)/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libewald.a: $(LIB_OBJ)
	@rm -f $@
	$(Q)ar rcs $@ $^

$(BUILD)/libewald.so: $(LIB_OBJ)
	$(Q)$(CC) -shared -o $@ $^ $(LDLIBS)

$(BUILD)/ewald: $(CLI_OBJ) $(BUILD)/libewald.a
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) -o $@ $(CLI_OBJ) $(BUILD)/libewald.a $(LDLIBS)

# Tests link the library plus the CLI's option/config framework (cli.o).
$(BUILD)/tests/%: tests/%.c tests/testutil.h tests/test_blob.h $(BUILD)/libewald.a $(BUILD)/src/cli/cli.o
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(CFLAGS) -Itests -o $@ $< $(BUILD)/src/cli/cli.o $(BUILD)/libewald.a $(LDLIBS) -lcmocka

$(BUILD)/bench/%: bench/%.c $(BUILD)/libewald.a
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(CFLAGS) -Ibench -o $@ $< $(BUILD)/libewald.a $(LDLIBS)

tests: $(TEST_BIN) cli
benches: $(BENCH_BIN) cli

# Run every test binary (or those matching T=pattern); the last line is
# "N passed, N failed, N skipped".
check: tests
	@EWALD_BIN=$(BUILD)/ewald sh scripts/run-tests.sh $(BUILD)/tests "$(T)"

bench: benches
	@sh scripts/run-benches.sh $(BUILD)/bench "$(B)"

# MPI tests: tests/mpi/test_mpi_*.c, built with mpicc and run under
# `mpirun -np 2` (root needs the OMPI_ALLOW_RUN_AS_ROOT variables).
MPI_TEST_SRC := $(sort $(wildcard tests/mpi/test_mpi_*.c))
check-mpi:
	$(MAKE) MPI=1 BUILD=build-mpi lib
	@mkdir -p build-mpi/tests/mpi
	@set -e; for t in $(MPI_TEST_SRC); do b=build-mpi/tests/mpi/$$(basename $$t .c); \
	  mpicc $(CFLAGS) -DEW_HAVE_MPI=1 -Itests -o $$b $$t build-mpi/libewald.a $(LDLIBS) -lcmocka; done
	@OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 \
	  sh scripts/run-tests.sh build-mpi/tests/mpi "$(T)" "mpirun -np 2 --oversubscribe"

# Idle OpenMP threads sleep rather than spin (10x faster phasing when the
# cores are shared; set OMP_WAIT_POLICY=active on a dedicated machine).
demo: cli
	OMP_WAIT_POLICY=$${OMP_WAIT_POLICY:-passive} $(BUILD)/ewald demo $(DEMO_ARGS)

deps:
	sh scripts/install-deps.sh

FUZZ_SRC := $(sort $(wildcard fuzz/fuzz_*.c))
FUZZ_BIN := $(FUZZ_SRC:fuzz/%.c=build-fuzz/%)
FUZZ_LIB_OBJ := $(LIB_SRC:%.c=build-fuzz/%.o)
build-fuzz/src/%.o: src/%.c $(HEADERS)
	@mkdir -p $(dir $@)
	clang -std=c11 -D_POSIX_C_SOURCE=200809L -O1 -g -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -fopenmp -Isrc $(PKG_CFLAGS) -Wall -Wextra -Wno-unused-parameter -c $< -o $@
build-fuzz/%: fuzz/%.c $(FUZZ_LIB_OBJ)
	@mkdir -p $(dir $@)
	clang -std=c11 -D_POSIX_C_SOURCE=200809L -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -fopenmp -Isrc $(PKG_CFLAGS) -o $@ $< $(FUZZ_LIB_OBJ) $(PKG_LIBS) -lfftw3f_omp -lfftw3_omp -lm
fuzz: $(FUZZ_BIN)

install: all
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 644 $(BUILD)/libewald.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(BUILD)/libewald.so $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(BUILD)/ewald $(DESTDIR)$(PREFIX)/bin/
	for h in $(filter-out src/cli/%,$(HEADERS)); do d=$(DESTDIR)$(PREFIX)/include/ewald/$$(dirname $${h#src/}); \
	  install -d $$d && install -m 644 $$h $$d/; done
	install -m 644 src/ewald.h $(DESTDIR)$(PREFIX)/include/ewald/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(shell sed -n 's/^#define EW_VERSION "\(.*\)"/\1/p' src/core/util.h)|' \
	    -e 's|@PKGS@|$(PKGS)|' scripts/ewald.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/ewald.pc

clean:
	rm -rf build build-san build-fuzz build-mpi

help:
	@sed -n '1,12p' Makefile
