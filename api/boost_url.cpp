// Boost.URL's sources (router.cpp parses request targets with it), compiled into exactly
// this one translation unit: Boost.URL is header-only here only in this sense.
#include <boost/url/src.hpp>
