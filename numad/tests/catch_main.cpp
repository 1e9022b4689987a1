// The Catch2 (v2) main of disco-numad's tests.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
