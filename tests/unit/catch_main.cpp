// The one Catch2 (v2, as Debian 12 ships it) main of the unit tests.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
